// Crash and hang failpoints for tests. `SCM_FAILPOINTS` is a comma-separated list of
// `name[:action]`; when the running code reaches a listed point the process signals itself:
// `kill` (the default) is SIGKILL, exactly what a power cut or `kill -9` does to the install steps;
// `stop` is SIGSTOP, a process that hangs (paused, or cut off) with its sockets open until it gets
// SIGCONT or SIGKILL. Outside tests the variable is unset and `failpoint()` is a cheap no-op. Read
// on every call so a test can set it per child process.
export const FAILPOINTS_ENV = 'SCM_FAILPOINTS';

const SIGNALS = { kill: 'SIGKILL', stop: 'SIGSTOP' } as const;

export function failpoint(name: string): void {
  const spec = process.env[FAILPOINTS_ENV];
  if (spec === undefined || spec === '') return;
  for (const item of spec.split(',')) {
    const [point, action = 'kill'] = item.trim().split(':');
    if (point !== name) continue;
    if (action !== 'kill' && action !== 'stop') throw new Error(`${FAILPOINTS_ENV} entry ${JSON.stringify(item.trim())}: unknown action ${JSON.stringify(action)}, expected kill or stop`);
    process.kill(process.pid, SIGNALS[action]);
    return;
  }
}
