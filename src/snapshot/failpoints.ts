// Crash failpoints for tests. `SCM_FAILPOINTS` is a comma-separated list of names; when the
// running code reaches a listed point the process kills itself with SIGKILL, which is exactly what
// a power cut or `kill -9` does to the install steps. Outside tests the variable is unset and
// `failpoint()` is a cheap no-op. Read on every call so a test can set it per child process.
export const FAILPOINTS_ENV = 'SCM_FAILPOINTS';

export function failpoint(name: string): void {
  const spec = process.env[FAILPOINTS_ENV];
  if (spec === undefined || spec === '') return;
  if (spec.split(',').map((s) => s.trim()).includes(name)) {
    process.kill(process.pid, 'SIGKILL');
  }
}
