// Crash and hang failpoints for tests. `SCM_FAILPOINTS` is a comma-separated list of
// `name[:action]`; when the running code reaches a listed point the process signals itself:
// `kill` (the default) is SIGKILL, exactly what a power cut or `kill -9` does to the install steps;
// `stop` is SIGSTOP, a process that hangs (paused, or cut off) with its sockets open until it gets
// SIGCONT or SIGKILL. `hang-once` (only where the code awaits `failpointAsync`) leaves the process
// running but never returns from the point, the first time it is reached in this process: a stream
// that goes silent while its server's Raft loop carries on. Outside tests the variable is unset and `failpoint()` is a cheap no-op. Read
// on every call so a test can set it per child process.
export const FAILPOINTS_ENV = 'SCM_FAILPOINTS';

const SIGNALS = { kill: 'SIGKILL', stop: 'SIGSTOP' } as const;

export function failpoint(name: string): void {
  const spec = process.env[FAILPOINTS_ENV];
  if (spec === undefined || spec === '') return;
  for (const item of spec.split(',')) {
    const [point, action = 'kill'] = item.trim().split(':');
    if (point !== name) continue;
    if (action === 'hang-once') continue; // failpointAsync's
    if (action !== 'kill' && action !== 'stop') throw new Error(`${FAILPOINTS_ENV} entry ${JSON.stringify(item.trim())}: unknown action ${JSON.stringify(action)}, expected kill, stop or hang-once`);
    process.kill(process.pid, SIGNALS[action]);
    return;
  }
}

const hung = new Set<string>();

/**
 * failpoint() for code that can wait: also takes `hang-once`, which never resolves the first time
 * the point is reached in this process (later calls pass).
 */
export async function failpointAsync(name: string): Promise<void> {
  const spec = process.env[FAILPOINTS_ENV];
  if (spec === undefined || spec === '') return;
  for (const item of spec.split(',')) {
    const [point, action] = item.trim().split(':');
    if (point !== name || action !== 'hang-once') continue;
    if (hung.has(name)) return;
    hung.add(name);
    await new Promise<never>(() => undefined);
  }
  failpoint(name);
}
