// Synchronous clean-up that must run however the process ends: normally, on an uncaught error, or
// on SIGINT/SIGTERM (Ctrl-C during `npm run chaos`, a test runner's timeout). Node runs no 'exit'
// handlers when a signal kills it, so one handler per signal runs every registered clean-up and
// then exits with the conventional 128 + signal number.
const cleanups = new Set<() => void>();
let installed = false;

function runAll(): void {
  for (const fn of [...cleanups]) {
    try {
      fn();
    } catch {
      // keep cleaning up the rest
    }
  }
}

function onSignal(signal: NodeJS.Signals): void {
  runAll();
  process.exit(signal === 'SIGINT' ? 130 : 143);
}

/** Registers `fn` (synchronous) to run at exit or on SIGINT/SIGTERM; returns its unregistration. */
export function onTerminate(fn: () => void): () => void {
  if (!installed) {
    installed = true;
    process.on('exit', runAll);
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  }
  cleanups.add(fn);
  return () => {
    cleanups.delete(fn);
  };
}
