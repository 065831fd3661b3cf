// Before an admin command starts its retries, one quick look at whether anything listens at the
// SCM addresses at all. The client retries an unreachable SCM until its deadline (30 s by default,
// as it should while a leader is being elected); with nothing listening anywhere that wait tells an
// operator nothing, so the command fails within seconds instead, saying so.
import { connect } from 'node:net';

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
