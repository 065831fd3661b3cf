// `scm start`: one node in the foreground until SIGTERM or SIGINT (or, when asked, until its stdin
// closes), then an orderly stop (stop serving, finish the fsync in flight, close scm.db, release
// in_use.lock).
//
// Everything the process prints is a JSON line on stdout, so `jq` and log stores read all of it:
// a configuration that cannot be read, a failed start (a held in_use.lock, a port in use), the
// start-up steps the caller adds, Node's own warnings and an uncaught error, each a line with the
// same fields as the node's other logs.
//
// Binding: the client, Ratis and InterSCM servers listen on `ozone.scm.client.bind.host` (0.0.0.0
// by default) and the HTTP server on the host of `ozone.scm.http-address` (0.0.0.0 by default).
// `scm cluster` sets both to 127.0.0.1, so a local cluster stays on loopback.
import { createLogger, type DestinationStream, type Logger } from '../metrics/logger.js';
import { KEY, requireSelf, type ScmConfig, type ScmPeerConfig } from './config.js';
import { ScmNode } from './scm-node.js';
import { onStopSignals } from './stop-signals.js';
import { applyHeapGrowingPercent } from './v8-heap.js';

export type { Logger } from '../metrics/logger.js';

export interface DaemonIo {
  readonly env: NodeJS.ProcessEnv;
}

export interface DaemonOptions {
  /** The node id before the configuration is read (from --node-id), for the lines about reading it. */
  readonly nodeIdHint?: string;
  /** Reads and checks the configuration; a throw is logged as fatal. */
  readonly loadConfig: () => ScmConfig;
  /** Steps before the node starts (Ozone's ENSURE_SCM_INITIALIZED …), logging through `log`. */
  readonly prepare?: (config: ScmConfig, log: Logger) => Promise<void>;
  /**
   * Stop, as on SIGTERM, when stdin reaches its end: a parent that starts nodes with a pipe on their
   * stdin (`scm cluster`) then takes them down with it even when it is killed outright.
   */
  readonly stopOnStdinEof?: boolean;
  /** For tests: where the JSON lines go (stdout by default). */
  readonly destination?: DestinationStream;
  /** For tests: how V8 flags are set (v8.setFlagsFromString by default). */
  readonly setV8Flags?: (flags: string) => void;
}

type StopReason = NodeJS.Signals | 'stdin closed';

/** Node's own warnings and anything uncaught leave as JSON lines too. */
function routeProcessOutput(log: Logger): () => void {
  const onWarning = (warning: Error): void => log.warn({ err: warning, event: 'process_warning' }, warning.message);
  const onUncaught = (err: unknown): void => {
    log.fatal({ err, event: 'uncaught_error' }, `uncaught error, exiting: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  };
  // The default warning listener prints plain text to stderr; ours replaces it.
  const defaults = process.listeners('warning');
  process.removeAllListeners('warning');
  process.on('warning', onWarning);
  process.on('uncaughtException', onUncaught);
  process.on('unhandledRejection', onUncaught);
  return () => {
    process.off('warning', onWarning);
    for (const listener of defaults) process.on('warning', listener);
    process.off('uncaughtException', onUncaught);
    process.off('unhandledRejection', onUncaught);
  };
}

function stopRequested(options: DaemonOptions, log: Logger): { reason: Promise<StopReason>; dispose: () => void } {
  let resolveReason: (reason: StopReason) => void = () => {};
  const reason = new Promise<StopReason>((resolve) => (resolveReason = resolve));
  let requested = false;
  const request = (why: StopReason): void => {
    if (requested) return;
    requested = true;
    log.debug({ reason: why }, 'stop requested');
    resolveReason(why);
  };
  const disposeSignals = onStopSignals({
    stop: request,
    giveUp: (signal) => {
      log.warn({ signal, event: 'stop_abandoned' }, `${signal} again while stopping: exiting without finishing the orderly stop`);
      process.exit(1);
    },
  });
  const onEnd = (): void => request('stdin closed');
  if (options.stopOnStdinEof === true) {
    process.stdin.on('end', onEnd);
    process.stdin.on('close', onEnd);
    process.stdin.resume();
  }
  return {
    reason,
    dispose: () => {
      disposeSignals();
      process.stdin.off('end', onEnd);
      process.stdin.off('close', onEnd);
      if (options.stopOnStdinEof === true) process.stdin.pause();
    },
  };
}

function loggerFor(nodeId: string | null, io: DaemonIo, options: DaemonOptions): Logger {
  return createLogger({ nodeId, env: io.env, ...(options.destination !== undefined ? { destination: options.destination } : {}) });
}

/** Runs the node until a stop is requested (exit code 0) or it cannot start or go on (exit code 1). */
export async function runNodeUntilSignalled(io: DaemonIo, options: DaemonOptions): Promise<number> {
  // Until the configuration names the node, lines carry the id given on the command line, if any.
  let log: Logger;
  try {
    log = loggerFor(options.nodeIdHint ?? null, io, options);
  } catch (err) {
    // Only an invalid SCM_LOG_LEVEL gets here: say it in JSON, at the level every reader shows.
    loggerFor(options.nodeIdHint ?? null, { env: {} }, options).fatal({ err, event: 'start_failed' }, `cannot start: ${(err as Error).message}`);
    return 1;
  }
  const restore = routeProcessOutput(log);
  const stop = stopRequested(options, log);
  try {
    let config: ScmConfig;
    let self: ScmPeerConfig;
    try {
      config = options.loadConfig();
      self = requireSelf(config);
    } catch (err) {
      log.fatal({ err, event: 'start_failed' }, `cannot start: ${(err as Error).message}`);
      return 1;
    }
    const nodeLog = self.nodeId === options.nodeIdHint ? log : loggerFor(self.nodeId, io, options);
    nodeLog.debug({ event: 'configuration', values: Object.fromEntries(config.values) }, 'configuration in effect (keys set in ozone-site.xml or OZONE-SITE.XML_ variables)');
    // Before the node loads its state: the load's collections run under the same factor.
    const heapFlag = applyHeapGrowingPercent(config.v8HeapGrowingPercent, options.setV8Flags);
    nodeLog.debug({ key: KEY.v8HeapGrowingPercent, flag: heapFlag ?? null }, heapFlag === undefined ? "V8 picks its own heap growing factor" : `V8 heap growing factor set: ${heapFlag}`);
    let node: ScmNode;
    let failed: (err: Error) => void = () => {};
    const fatal = new Promise<Error>((resolve) => (failed = resolve));
    try {
      await options.prepare?.(config, nodeLog);
      nodeLog.debug({ bindHost: config.clientBindHost, httpHost: self.httpHost, key: KEY.clientBindHost }, 'binding the client, Ratis and InterSCM servers');
      node = await ScmNode.start({ config, logger: nodeLog, onFatal: (err) => failed(err), bindHost: config.clientBindHost });
    } catch (err) {
      nodeLog.fatal({ err, event: 'start_failed' }, `cannot start: ${(err as Error).message}`);
      return 1;
    }
    const outcome = await Promise.race([stop.reason, fatal]);
    if (outcome instanceof Error) {
      nodeLog.fatal({ err: outcome, event: 'stopped_on_error' }, `stopped: ${outcome.message}`);
      return 1;
    }
    nodeLog.info({ event: 'stopping', reason: outcome }, `stopping: ${outcome}`);
    const started = Date.now();
    await node.stop();
    nodeLog.debug({ event: 'stopped', millis: Date.now() - started }, 'orderly stop finished');
    return 0;
  } finally {
    stop.dispose();
    restore();
  }
}
