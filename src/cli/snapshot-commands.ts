// `scm admin snapshot save FILE`: a verified checkpoint of scm.db from the leader, kept as a file
// (as `etcdctl snapshot save`); `scm restore --from FILE` builds a new node from it.
import { saveCheckpoint } from '../server/snapshot-backup.js';
import type { AdminSpec } from './admin-commands.js';
import { UsageError } from './command.js';
import { sortedIds } from './format.js';

const MIB = 1024 * 1024;

/** One progress line a second at most: bytes so far and, when the SCM estimates the size, a share. */
export function progressPrinter(write: (text: string) => void, now: () => number = Date.now): (p: { bytes: number; estimatedTotalBytes: number | undefined }) => void {
  let last = now();
  return ({ bytes, estimatedTotalBytes }) => {
    if (now() - last < 1_000) return;
    last = now();
    // The estimate is the uncompressed size, so the share is a lower bound.
    const share = estimatedTotalBytes !== undefined && estimatedTotalBytes > 0 ? ` (at least ${Math.min(99, Math.floor((bytes / estimatedTotalBytes) * 100))}%)` : '';
    write(`downloaded ${(bytes / MIB).toFixed(1)} MiB${share}\n`);
  };
}

export const SNAPSHOT_COMMANDS: readonly AdminSpec[] = [
  {
    path: ['snapshot', 'save'],
    summary: "Save a verified checkpoint of the leader's scm.db to FILE (restore it with `scm restore`).",
    positionals: [{ name: 'file', description: 'where to write the checkpoint (tar.gz); must not exist' }],
    options: [
      {
        name: 'grpc-address',
        kind: 'string',
        valueName: 'HOST:PORT',
        description: "InterSCM address (ozone.scm.grpc.port) to download from, instead of the leader's from the configuration",
      },
      { name: 'download-timeout', kind: 'integer', valueName: 'SECONDS', description: 'give up on the transfer after this long', default: 3600 },
    ],
    plan: (context) => {
      const file = context.positional(0);
      const downloadSeconds = context.integer('download-timeout') ?? 3600;
      if (downloadSeconds < 1) throw new UsageError('--download-timeout must be at least 1 second', context.command);
      const explicit = context.string('grpc-address');
      return async ({ client, endpoints }) => {
        const info = await client.getClusterInfo();
        const from = explicit !== undefined ? explicit : info.leaderId === '' ? undefined : endpoints.grpcAddressOf(info.leaderId);
        if (from === undefined) {
          throw new Error(
            info.leaderId === ''
              ? 'the SCMs know no leader right now; try again once one is elected, or name a node with --grpc-address'
              : `cannot tell the InterSCM address (ozone.scm.grpc.port) of the leader ${info.leaderId} from ${endpoints.source}: give the cluster's ozone-site.xml (--config) or --grpc-address HOST:PORT`,
          );
        }
        const source = explicit !== undefined ? from : `${info.leaderId} (${from})`;
        context.io.stderr(`saving a checkpoint of scm.db from ${source} to ${file}\n`);
        const saved = await saveCheckpoint({
          address: from,
          clusterId: info.clusterId,
          file,
          deadlineMs: downloadSeconds * 1000,
          onProgress: progressPrinter(context.io.stderr),
          requesterId: 'scm admin snapshot save',
          ...(endpoints.channel !== undefined ? { channel: endpoints.channel } : {}),
        });
        const voters = sortedIds(saved.configuration.voters.map((v) => v.id));
        return {
          json: { file: saved.file, bytes: saved.bytes, clusterId: saved.clusterId, term: saved.termIndex.term, index: saved.termIndex.index, files: saved.files, voters },
          human:
            `Snapshot saved to ${saved.file}: ${saved.bytes} bytes, scm.db of ${saved.clusterId} at ${saved.termIndex.term}#${saved.termIndex.index} (voters ${voters.join(', ')}).\n` +
            'Restore it with: scm restore --from FILE (on a node with empty directories).\n',
        };
      };
    },
  },
];
