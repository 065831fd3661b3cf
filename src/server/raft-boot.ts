// Start-up: from what is on disk (raft-meta, raft-meta.conf, the log, scm.db) to the Raft core's
// initial state. The node and the simulator both start through here, so a restart in the
// simulation is a restart of the product.
//
// Where the configuration comes from: raft-meta.conf holds the last committed configuration entry;
// scm.db holds the configuration as of its last applied entry (or the checkpoint it was installed
// from). The newer of the two (by index) is in force, plus any configuration entries in the log
// after it. raft-meta.conf missing beside a node that has run is rebuilt from scm.db and the log,
// with a warning; if neither holds a configuration the node refuses to start rather than run as a
// non-voter without one.
import type { HardState, InitialState, LogEntry } from '../raft/index.js';
import { mutant } from '../raft/mutants.js';
import type { AppliedConfiguration } from '../statemachine/index.js';
import { reconcileLogWithStateMachine, type Reconciliation } from './log-reconcile.js';
import type { RaftLogStore, ReplicatedStateMachine } from './raft-ports.js';

/** The durable Raft state as start-up reads it. */
export interface DurableRaftState extends RaftLogStore {
  readMeta(): HardState;
  readConf(): LogEntry | undefined;
}

export type ConfigurationSource = 'raft-meta.conf' | 'scm.db' | 'log' | 'none';

export interface BootState {
  readonly initial: InitialState;
  readonly reconciliation: Reconciliation;
  /** Where the configuration in force came from. */
  readonly configurationSource: ConfigurationSource;
  /** Index of the configuration raft-meta.conf holds now (-1: no file); the driver rewrites it when older. */
  readonly savedConfIndex: number;
  /** The configuration raft-meta.conf held at start-up (a committed one), before anything rewrites it. */
  readonly savedConf: AppliedConfiguration | undefined;
}

export interface BootOptions {
  /** Names the Raft group directory in messages. */
  readonly where: string;
  /**
   * This node is the primordial SCM (`scm init` wrote the group's first configuration into
   * raft-meta.conf): without that file and without any data it cannot know its group.
   */
  readonly primordial?: boolean;
  readonly warn: (message: string, fields: Record<string, unknown>) => void;
}

export const CONF_FILE = 'raft-meta.conf';

export async function recoverRaftState(store: DurableRaftState, sm: ReplicatedStateMachine, options: BootOptions): Promise<BootState> {
  const applied = sm.lastApplied();
  const reconciliation = await reconcileLogWithStateMachine(store, applied, options.where);
  const conf = store.readConf();
  const fromConf: AppliedConfiguration | undefined =
    conf !== undefined && conf.payload.kind === 'config' ? { term: conf.term, index: conf.index, voters: conf.payload.peers, nonVoters: conf.payload.listeners } : undefined;
  const fromDb = sm.configuration();
  let chosen: AppliedConfiguration | undefined;
  let source: ConfigurationSource = 'none';
  // raft-meta.conf is written once its configuration is committed, which can be before scm.db has
  // applied that far: then the file proves the commit index reached it, provided the log still holds
  // that very entry. If the log lost it (it was reset after an install), the file says too much.
  const confAhead = fromConf !== undefined && fromConf.index > applied.index;
  const confInLog = fromConf !== undefined && store.term(fromConf.index) === fromConf.term && fromConf.index <= store.lastIndex();
  if (fromConf !== undefined && confAhead && !confInLog) {
    options.warn(`${CONF_FILE} in ${options.where} names the configuration at index ${fromConf.index}, beyond what scm.db applied (${applied.index}) and no longer in the log: using scm.db's and the log's`, {
      file: CONF_FILE,
      configIndex: fromConf.index,
      applied: applied.index,
    });
  }
  if (fromConf !== undefined && (!confAhead || confInLog) && (fromDb === undefined || fromConf.index >= fromDb.index)) {
    chosen = fromConf;
    source = CONF_FILE;
  } else if (fromConf === undefined && mutant('missing-conf-is-empty')) {
    // The old bug: a missing file read as "no configuration" (the node ran as a non-voter).
  } else if (fromDb !== undefined) {
    chosen = fromDb;
    source = 'scm.db';
    if (fromConf === undefined) {
      options.warn(`${CONF_FILE} is missing in ${options.where}: rebuilt from the configuration scm.db holds (index ${fromDb.index}) and the log after it`, {
        file: CONF_FILE,
        configIndex: fromDb.index,
      });
    }
  } else if (fromConf === undefined && options.primordial === true && applied.index === 0 && store.lastIndex() < store.firstIndex()) {
    throw new Error(
      `${CONF_FILE} is missing in ${options.where} on the primordial SCM: it holds the group's first configuration, which nothing else records yet; ` +
        `restore it from a backup, or remove the node's directories and run \`scm init\` again`,
    );
  } else if (applied.index > 0 || store.lastIndex() >= store.firstIndex()) {
    // The node has run, yet nothing on disk names its group: only the log can still tell.
    if (!logHasConfiguration(store)) {
      throw new Error(
        `${CONF_FILE} is missing in ${options.where} and neither scm.db (applied ${applied.term}#${applied.index}) nor the log holds a configuration: ` +
          `restore ${CONF_FILE} from a backup of this node, or remove the node's directories and bootstrap it again`,
      );
    }
    source = 'log';
    options.warn(`${CONF_FILE} is missing in ${options.where}: rebuilt from the configuration entries in the log`, { file: CONF_FILE });
  }
  const initial: InitialState = {
    hardState: store.readMeta(),
    membership: chosen === undefined ? { voters: [], nonVoters: [] } : { voters: chosen.voters, nonVoters: chosen.nonVoters },
    membershipIndex: chosen?.index ?? 0,
    applied: applied.index,
    // A configuration known committed beyond what was applied: the commit index reached it.
    commit: Math.max(applied.index, chosen?.index ?? 0),
  };
  return { initial, reconciliation, configurationSource: source, savedConfIndex: fromConf?.index ?? -1, savedConf: fromConf };
}

function logHasConfiguration(store: RaftLogStore): boolean {
  const last = store.lastIndex();
  for (let i = store.firstIndex(); i <= last; ) {
    const batch = store.entries(i, last + 1, 4 * 1024 * 1024);
    if (batch.some((e) => e.payload.kind === 'config')) return true;
    i += batch.length;
  }
  return false;
}
