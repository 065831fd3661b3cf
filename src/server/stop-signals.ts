// SIGINT and SIGTERM as requests to stop. The first starts an orderly stop; a later one means the
// operator will not wait for it. One Ctrl-C can arrive twice, though: `npm start` forwards the
// SIGINT the terminal already sent to the whole process group. So a signal within a second of the
// first is the same request, delivered again, and only a later one gives up.

export interface StopSignalHandlers {
  readonly stop: (signal: NodeJS.Signals) => void;
  readonly giveUp: (signal: NodeJS.Signals) => void;
}

export const REPEAT_AFTER_MS = 1_000;

/** Where signals come from: the process, or a stand-in in tests. */
export interface SignalSource {
  on(event: 'SIGINT' | 'SIGTERM', listener: (signal: NodeJS.Signals) => void): unknown;
  off(event: 'SIGINT' | 'SIGTERM', listener: (signal: NodeJS.Signals) => void): unknown;
}

/** Listens for SIGINT and SIGTERM until the returned function is called. */
export function onStopSignals(handlers: StopSignalHandlers, now: () => number = Date.now, source: SignalSource = process): () => void {
  let first: number | undefined;
  const listener = (signal: NodeJS.Signals): void => {
    if (first === undefined) {
      first = now();
      handlers.stop(signal);
    } else if (now() - first >= REPEAT_AFTER_MS) {
      handlers.giveUp(signal);
    }
  };
  source.on('SIGINT', listener);
  source.on('SIGTERM', listener);
  return () => {
    source.off('SIGINT', listener);
    source.off('SIGTERM', listener);
  };
}
