// `scm start`: one node in the foreground until SIGTERM or SIGINT, then an orderly stop (stop
// serving, finish the fsync in flight, close scm.db, release in_use.lock).
import { createLogger } from '../metrics/logger.js';
import { requireSelf, type ScmConfig } from './config.js';
import { ScmNode } from './scm-node.js';

/** What the daemon needs from its caller: where to report start and failure, and the environment (log settings). */
export interface DaemonIo {
  readonly stderr: (text: string) => void;
  readonly env: NodeJS.ProcessEnv;
}

/** Runs the node until SIGTERM/SIGINT (exit code 0) or a fatal error (exit code 1). */
export async function runNodeUntilSignalled(config: ScmConfig, io: DaemonIo): Promise<number> {
  const self = requireSelf(config);
  const logger = createLogger({ nodeId: self.nodeId, env: io.env });
  let failed: (err: Error) => void = () => {};
  const fatal = new Promise<Error>((resolve) => (failed = resolve));
  const node = await ScmNode.start({ config, logger, onFatal: (err) => failed(err) });
  io.stderr(
    `SCM ${self.nodeId} running: client ${node.ports.client}, ratis ${node.ports.ratis}, grpc ${node.ports.grpc}, http ${node.ports.http}\n`,
  );
  const signalled = new Promise<NodeJS.Signals>((resolve) => {
    process.once('SIGTERM', () => resolve('SIGTERM'));
    process.once('SIGINT', () => resolve('SIGINT'));
  });
  const outcome = await Promise.race([signalled, fatal]);
  if (outcome instanceof Error) {
    io.stderr(`scm: ${self.nodeId} stopped: ${outcome.message}\n`);
    return 1;
  }
  logger.info({ signal: outcome }, 'stopping on signal');
  await node.stop();
  return 0;
}
