// Start-up phases of a node, read from its JSON log lines (pino: `time`, an ISO date or epoch ms,
// and `msg`).
// Pure; the restart and failover parts pass a node's output and the moment it was spawned.

/** Logged right after RaftStorage.open (the log's segments recovered), before scm.db is opened. */
export const STORAGE_OPENED_MSG = 'checked for an interrupted snapshot install';
/** Logged once scm.db is loaded into memory, the servers listen and the Raft loop runs. */
export const STARTED_MSG = 'SCM started';

export interface StartupPhases {
  /** Spawn → Raft log recovered (process and module start-up, configuration, RaftStorage.open). */
  readonly toStorageOpenMs: number | undefined;
  /** Raft log recovered → started (scm.db opened and loaded into memory, recovery, servers bound). */
  readonly storageToStartedMs: number | undefined;
  /** Spawn → started. */
  readonly toStartedMs: number | undefined;
}

/** The `time` (epoch ms) of the first JSON log line whose `msg` is `msg`. */
export function logTime(output: string, msg: string): number | undefined {
  for (const line of output.split('\n')) {
    if (!line.startsWith('{') || !line.includes(msg)) continue;
    try {
      const parsed = JSON.parse(line) as { msg?: unknown; time?: unknown };
      if (parsed.msg !== msg) continue;
      if (typeof parsed.time === 'number') return parsed.time;
      if (typeof parsed.time === 'string' && Number.isFinite(Date.parse(parsed.time))) return Date.parse(parsed.time);
    } catch {
      // not a JSON line after all
    }
  }
  return undefined;
}

export function startupPhases(output: string, spawnedAt: number): StartupPhases {
  const storage = logTime(output, STORAGE_OPENED_MSG);
  const started = logTime(output, STARTED_MSG);
  return {
    toStorageOpenMs: storage === undefined ? undefined : storage - spawnedAt,
    storageToStartedMs: storage === undefined || started === undefined ? undefined : started - storage,
    toStartedMs: started === undefined ? undefined : started - spawnedAt,
  };
}
