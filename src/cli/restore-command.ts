// `scm restore --from FILE`: a new single-node SCM from a checkpoint saved with `scm admin snapshot
// save` (src/server/snapshot-restore.ts says what it writes and why).
import { restoreFromCheckpoint } from '../server/snapshot-restore.js';
import { EXIT_OK, type CommandSpec } from './command.js';
import { sortedIds } from './format.js';
import { CONFIG_OPTIONS, configFromCli } from './node-commands.js';

export const restoreCommand: CommandSpec = {
  path: ['restore'],
  summary: 'build a new single-node SCM from a saved checkpoint (its directories must be empty)',
  options: [
    ...CONFIG_OPTIONS,
    { name: 'from', kind: 'string', valueName: 'FILE', description: 'the checkpoint `scm admin snapshot save` wrote', required: true },
    { name: 'new-cluster-id', kind: 'boolean', description: "give the restored cluster a new clusterID instead of the checkpoint's" },
  ],
  async run(ctx) {
    const config = configFromCli(ctx);
    const restored = await restoreFromCheckpoint({ config, file: ctx.requiredString('from'), newClusterId: ctx.flag('new-cluster-id') });
    const { term, index } = restored.termIndex;
    const same = restored.clusterId === restored.snapshotClusterId;
    ctx.io.stdout(
      `Restored scm.db at ${term}#${index} into ${restored.dbDir} as node ${restored.nodeId} of ${restored.clusterId}` +
        `${same ? " (the checkpoint's clusterID)" : ` (new; the checkpoint is of ${restored.snapshotClusterId})`}.\n` +
        `Its Raft group (${restored.groupDir}) holds ${restored.nodeId} alone; it held ${sortedIds(restored.previousConfiguration.voters.map((v) => v.id)).join(', ')}.\n` +
        'Next: `scm start` here, then `scm bootstrap` and `scm start` on each further node, on empty directories.\n',
    );
    return EXIT_OK;
  },
};
