// Before an admin command starts its retries, one quick look at whether anything listens at the
// SCM addresses at all. The client retries an unreachable SCM until its deadline (30 s by default,
// as it should while a leader is being elected); with nothing listening anywhere that wait tells an
// operator nothing, so the command fails within seconds instead, saying so.
import { connect, isIP } from 'node:net';
import { connect as tlsConnect } from 'node:tls';

/** host and port of `host:port` or `[v6]:port`. */
function split(address: string): { host: string; port: number } {
  const colon = address.lastIndexOf(':');
  const host = address.slice(0, colon).replace(/^\[(.*)\]$/, '$1');
  return { host, port: Number(address.slice(colon + 1)) };
}

/** Whether a TCP connection to `address` opens within `timeoutMs`. */
export function acceptsConnections(address: string, timeoutMs: number): Promise<boolean> {
  const { host, port } = split(address);
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    const done = (open: boolean): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(open);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

export class NoScmReachableError extends Error {
  constructor(readonly addresses: readonly string[]) {
    super(`no SCM reachable at ${addresses.join(', ')}; is the cluster running?`);
    this.name = 'NoScmReachableError';
  }
}

/** Throws NoScmReachableError when none of the addresses accepts a connection within `timeoutMs`. */
export async function requireSomeReachable(addresses: readonly string[], timeoutMs: number): Promise<void> {
  const open = await Promise.all(addresses.map((address) => acceptsConnections(address, timeoutMs)));
  if (!open.includes(true)) throw new NoScmReachableError(addresses);
}

/**
 * Whether the server at `address` answers a TLS handshake. A plaintext gRPC client retries a TLS
 * port for its whole deadline and then reports only "failed to connect"; asking this first lets a
 * command say what is wrong. The peer's certificate is not checked here: nothing is sent over it.
 */
export function speaksTls(address: string, timeoutMs: number): Promise<boolean> {
  const { host, port } = split(address);
  return new Promise((resolve) => {
    const socket = tlsConnect({ host, port, rejectUnauthorized: false, ALPNProtocols: ['h2'], ...(isIP(host) !== 0 ? {} : { servername: host }) });
    const done = (tls: boolean): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(tls);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    socket.once('secureConnect', () => done(true));
    // A server that wants a client certificate may end the handshake with an alert: still TLS.
    socket.once('error', (err: NodeJS.ErrnoException) => done(/ALERT/.test(err.code ?? '')));
  });
}

export class TlsRequiredError extends Error {
  constructor(readonly address: string) {
    super(
      `the SCM at ${address} runs TLS, but this command has no TLS configuration: give the cluster's ozone-site.xml (--config FILE or $OZONE_CONF_DIR) with ozone.security.enabled, hdds.grpc.tls.enabled, hdds.x509.rootca.certificate.file and the client identity ozone.scm.client.x509.certificate.file / ozone.scm.client.x509.private.key.file`,
    );
    this.name = 'TlsRequiredError';
  }
}

/** Throws TlsRequiredError when a plaintext command would talk to an SCM that runs TLS. */
export async function requirePlaintextServers(addresses: readonly string[], timeoutMs: number): Promise<void> {
  const tls = await Promise.all(addresses.map((address) => speaksTls(address, timeoutMs)));
  const index = tls.indexOf(true);
  if (index >= 0) throw new TlsRequiredError(addresses[index] ?? '');
}
