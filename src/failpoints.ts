// Crash, hang and disk-trouble failpoints for tests. `SCM_FAILPOINTS` is a comma-separated list of
// `name[:action[=argument]]`. Outside tests the variable is unset and a failpoint is a cheap no-op.
// Read on every call so a test can set it per child process.
//
// At a point reached through `failpoint()` the process signals itself: `kill` (the default) is
// SIGKILL, exactly what a power cut or `kill -9` does to the install steps; `stop` is SIGSTOP, a
// process that hangs (paused, or cut off) with its sockets open until it gets SIGCONT or SIGKILL.
// Where the code can wait (`failpointAsync()`), `hang-once` leaves the process running but never
// returns from the point the first time it is reached in this process: a stream that goes silent
// while its server's Raft loop carries on.
//
// Disk points are reached through `diskFailpoint()` (the Raft log's writes and fsyncs), which also
// knows `delay=MS` (a slow disk: each hit waits MS milliseconds) and `enospc=N` (a full disk: the
// N-th hit and every later one fails with ENOSPC, as the write(2) would).
// A leaf module (no imports of ours), so storage and snapshot code can both use it.
export const FAILPOINTS_ENV = 'SCM_FAILPOINTS';

const SIGNALS = { kill: 'SIGKILL', stop: 'SIGSTOP' } as const;

interface Point {
  readonly action: string;
  readonly argument: number | undefined;
  readonly text: string;
}

function find(name: string): Point | undefined {
  const spec = process.env[FAILPOINTS_ENV];
  if (spec === undefined || spec === '') return undefined;
  for (const item of spec.split(',')) {
    const [point, action = 'kill'] = item.trim().split(':');
    if (point !== name) continue;
    const [verb = 'kill', arg] = action.split('=');
    const argument = arg === undefined ? undefined : Number(arg);
    if (argument !== undefined && !(Number.isSafeInteger(argument) && argument >= 0)) {
      throw new Error(`${FAILPOINTS_ENV} entry ${JSON.stringify(item.trim())}: ${JSON.stringify(arg)} is not a whole number`);
    }
    return { action: verb, argument, text: item.trim() };
  }
  return undefined;
}

function signal(point: Point, allowed: string): void {
  if (point.action !== 'kill' && point.action !== 'stop') {
    throw new Error(`${FAILPOINTS_ENV} entry ${JSON.stringify(point.text)}: unknown action ${JSON.stringify(point.action)}, expected ${allowed}`);
  }
  process.kill(process.pid, SIGNALS[point.action]);
}

export function failpoint(name: string): void {
  const point = find(name);
  if (point === undefined || point.action === 'hang-once') return; // hang-once is failpointAsync's
  signal(point, 'kill, stop or hang-once');
}

const hung = new Set<string>();

/** failpoint() for code that can wait: also `hang-once` (see above). */
export async function failpointAsync(name: string): Promise<void> {
  const point = find(name);
  if (point === undefined) return;
  if (point.action === 'hang-once') {
    if (hung.has(name)) return;
    hung.add(name);
    await new Promise<never>(() => undefined);
  }
  signal(point, 'kill, stop or hang-once');
}

const hits = new Map<string, number>();

/** A point on the disk path: kill, stop, delay=MS or enospc=N (see above). */
export async function diskFailpoint(name: string): Promise<void> {
  const point = find(name);
  if (point === undefined) return;
  if (point.action === 'delay') {
    await new Promise((resolve) => setTimeout(resolve, point.argument ?? 0));
    return;
  }
  if (point.action === 'enospc') {
    const hit = (hits.get(name) ?? 0) + 1;
    hits.set(name, hit);
    if (hit < (point.argument ?? 1)) return;
    const error = new Error(`ENOSPC: no space left on device (failpoint ${name})`) as NodeJS.ErrnoException;
    error.code = 'ENOSPC';
    error.errno = -28;
    throw error;
  }
  signal(point, 'kill, stop, delay=MS or enospc=N');
}
