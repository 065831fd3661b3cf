// Every process the benchmark starts (SCM nodes, etcd members, load generators) is killed when the
// benchmark exits, however it exits (an error, Ctrl-C, SIGTERM), so a failed run leaves nothing
// behind holding ports or data directories.

import { rmSync } from 'node:fs';

type PidSource = () => ReadonlyArray<number | undefined>;

const sources = new Set<PidSource>();
const dirs = new Set<string>();
let installed = false;

function killAll(): void {
  for (const source of sources) {
    for (const pid of source()) {
      if (pid === undefined) continue;
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }
  if (process.env['KEEP_TEST_DIRS'] === undefined) for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
}

/** Registers processes to kill at exit; returns the function that forgets them again. */
export function killOnExit(source: PidSource): () => void {
  install();
  sources.add(source);
  return () => sources.delete(source);
}

/** A scratch directory removed at exit (unless KEEP_TEST_DIRS is set); returns the forgetter. */
export function removeOnExit(dir: string): () => void {
  install();
  dirs.add(dir);
  return () => dirs.delete(dir);
}

function install(): void {
  if (!installed) {
    installed = true;
    process.on('exit', killAll);
    for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
      process.once(signal, () => {
        process.stderr.write(`\n${signal}: stopping every process the benchmark started\n`);
        killAll();
        process.exit(130);
      });
    }
  }
}
