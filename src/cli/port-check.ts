// Before `scm cluster` starts anything: every port its nodes will listen on must be free on
// loopback. Otherwise its nodes would fail to bind one by one, while its probes reached whatever
// holds the ports (another local cluster) and took it for its own.
import { createServer } from 'node:net';

export interface NamedPort {
  readonly port: number;
  /** e.g. "scm1 client". */
  readonly what: string;
}

function free(port: number, host: string): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen({ port, host, exclusive: true }, () => server.close(() => resolve(true)));
  });
}

/** Throws naming the first port in use. */
export async function assertPortsFree(ports: readonly NamedPort[], host: string): Promise<void> {
  for (const { port, what } of ports) {
    if (!(await free(port, host))) {
      throw new Error(`port ${port} (${what}) on ${host} is in use: another SCM or \`scm cluster\` is running there; stop it or choose other ports with --base-port`);
    }
  }
}
