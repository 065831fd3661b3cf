// A TCP relay that shapes each direction to a fixed rate, for bench/snapshot.bench.ts's
// `--link-mbit`: how a transfer behaves on a LAN link rather than loopback, where the wire is never
// the bottleneck. Runs in its own process (forked with IPC) so its work does not count as the
// leader's or the follower's. It models bandwidth only, not latency: loopback's round trip stays.
// Usage (forked): link-proxy.ts <targetPort> <mbitPerSecond>; reports {event:'ready', port}.
import { createConnection, createServer, type Socket } from 'node:net';

const [targetArg, mbitArg] = process.argv.slice(2);
const targetPort = Number(targetArg);
const bytesPerMs = (Number(mbitArg) * 1e6) / 8 / 1000;
if (!Number.isInteger(targetPort) || !(bytesPerMs > 0) || process.send === undefined) {
  console.error('usage (forked with IPC): link-proxy.ts <targetPort> <mbitPerSecond>');
  process.exit(2);
}
const send = process.send.bind(process);
/** A switch port buffers a few hundred KiB; more than this queued here pauses the sender. */
const MAX_QUEUED = 512 * 1024;
/**
 * Tokens accumulate up to this many milliseconds' worth: timers fire every millisecond at best, and
 * on a loaded machine every few, which a smaller bucket would turn into a slower link than asked.
 */
const BURST_MS = 20;

/** Forwards `from` to `to` at bytesPerMs, token bucket refilled by the clock. */
function shape(from: Socket, to: Socket): void {
  const queue: Buffer[] = [];
  let queued = 0;
  let tokens = 0;
  let last = performance.now();
  let timer: NodeJS.Timeout | undefined;
  const pump = (): void => {
    timer = undefined;
    const now = performance.now();
    tokens = Math.min(tokens + (now - last) * bytesPerMs, BURST_MS * bytesPerMs);
    last = now;
    while (queue.length > 0 && tokens >= 1) {
      const head = queue[0] as Buffer;
      const n = Math.min(head.length, Math.floor(tokens));
      to.write(head.subarray(0, n));
      tokens -= n;
      queued -= n;
      if (n === head.length) queue.shift();
      else queue[0] = head.subarray(n);
    }
    if (queued < MAX_QUEUED && from.isPaused()) from.resume();
    if (queue.length > 0) timer = setTimeout(pump, 1);
    else if (from.readableEnded) to.end();
  };
  from.on('data', (chunk: Buffer) => {
    queue.push(chunk);
    queued += chunk.length;
    if (queued >= MAX_QUEUED) from.pause();
    if (timer === undefined) pump();
  });
  from.on('end', () => {
    if (queue.length === 0) to.end();
  });
}

const server = createServer((client) => {
  const upstream = createConnection({ host: '127.0.0.1', port: targetPort });
  client.setNoDelay(true);
  upstream.setNoDelay(true);
  shape(client, upstream);
  shape(upstream, client);
  const close = (): void => {
    client.destroy();
    upstream.destroy();
  };
  client.on('error', close).on('close', close);
  upstream.on('error', close).on('close', close);
});
server.listen(0, '127.0.0.1', () => {
  const address = server.address();
  send({ event: 'ready', port: typeof address === 'object' && address !== null ? address.port : 0 });
});
process.on('message', (msg: { cmd: string }) => {
  if (msg.cmd === 'stop') process.exit(0);
});
