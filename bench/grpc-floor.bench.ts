// What a bare gRPC unary call costs on this machine, apart from anything we do: `npm run bench:grpc-floor`.
//
// An echo method (200-byte message, no protobuf: the bytes are the message) served by a server in a
// process of its own, called by a grpc-js client (the library the benchmark's load generator uses
// for etcd and for us) with 64 calls in flight, as the load rows' 64 callers do. Prints CPU µs per
// call for each side, from process.cpuUsage() around the measured calls, for four servers:
//   grpc-js          the library's defaults (channelz on);
//   grpc-js, no cz   `grpcServerOptions()` (src/grpc-options.ts: channelz off), which the node's
//                    Ratis and InterSCM servers run with, plus their connection timing;
//   unary            UnaryGrpcServer (src/server/unary-grpc-server.ts), the client port's server,
//                    serving the echo through addService like the grpc-js kinds;
//   node:http2       the same exchange written on node:http2 directly (headers, one framed
//                    message, trailers, no checks): what any server adds on top;
//   tcp              the framed message echoed over a bare TCP connection (node:net), no HTTP/2
//                    and no gRPC on either side: the floor of any exchange between two Node
//                    processes here. With --in-flight 1, 1e6 / calls/s is a round trip in µs
//                    between two processes that each sleep until the other's message arrives.
// The client side is the floor of the load generator's CPU per operation whatever the server;
// both sides together bound how many calls two cores can carry.
import { fork } from 'node:child_process';
import http2 from 'node:http2';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import { grpcChannelOptions, grpcServerOptions } from '../src/grpc-options.js';
import { UnaryGrpcServer, type UnaryCall } from '../src/server/unary-grpc-server.js';

type ServerKind = 'grpc-js' | 'grpc-js-no-channelz' | 'unary' | 'http2' | 'tcp';
const SERVER_KINDS: readonly ServerKind[] = ['grpc-js', 'grpc-js-no-channelz', 'unary', 'http2', 'tcp'];
/** The message and its 5-byte gRPC prefix, as every kind carries them. */
const FRAME_BYTES = 205;
const PATH = '/bench.Echo/Echo';
const identity = (b: Buffer): Buffer => b;
const ECHO: grpc.ServiceDefinition = {
  Echo: { path: PATH, requestStream: false, responseStream: false, requestSerialize: identity, requestDeserialize: identity, responseSerialize: identity, responseDeserialize: identity },
};

async function serve(kind: ServerKind): Promise<number> {
  if (kind === 'tcp') {
    const server = net.createServer((socket) => {
      socket.setNoDelay(true);
      socket.on('data', (chunk) => socket.write(chunk));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return (server.address() as { port: number }).port;
  }
  if (kind === 'unary') {
    const server = new UnaryGrpcServer();
    server.addService(ECHO, { Echo: (call: UnaryCall<Buffer>, callback: grpc.sendUnaryData<Buffer>) => callback(null, call.request) });
    return server.listen('127.0.0.1', 0);
  }
  if (kind !== 'http2') {
    const server = new grpc.Server(kind === 'grpc-js' ? {} : grpcServerOptions());
    server.addService(ECHO, { Echo: (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => callback(null, call.request) });
    return new Promise((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, port) => (e === null ? resolve(port) : reject(e))));
  }
  const server = http2.createServer();
  server.on('stream', (stream) => {
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => {
      const body = Buffer.concat(chunks);
      // The request's 5-byte gRPC prefix (flag, length) is the answer's too: the message is echoed.
      stream.respond({ ':status': 200, 'content-type': 'application/grpc+proto' }, { waitForTrailers: true });
      stream.once('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
      stream.end(body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as { port: number }).port;
}

function serverProcess(): void {
  const kind = process.argv[3] as ServerKind;
  let from = process.cpuUsage();
  process.on('message', (m: string) => {
    if (m === 'start') from = process.cpuUsage();
    else {
      const used = process.cpuUsage(from);
      process.send?.({ cpuUs: used.user + used.system }, undefined, {}, () => process.exit(0));
    }
  });
  serve(kind).then(
    (port) => process.send?.({ port }),
    (err: unknown) => {
      console.error(err);
      process.exit(1);
    },
  );
}

async function measure(kind: ServerKind, calls: number, inFlight: number): Promise<{ serverUs: number; clientUs: number; perSecond: number }> {
  const child = fork(fileURLToPath(import.meta.url), ['--server', kind], { execArgv: ['--import', 'tsx'] });
  const next = (): Promise<Record<string, number>> => new Promise((resolve) => child.once('message', resolve));
  const { port } = await next();
  const { call, close } = kind === 'tcp' ? await tcpCaller(port as number) : grpcCaller(port as number);
  const run = async (n: number): Promise<void> => {
    let left = n;
    await Promise.all(Array.from({ length: inFlight }, async () => {
      while (left-- > 0) await call();
    }));
  };
  await run(Math.max(1000, calls / 3)); // warm-up: JIT and connection
  child.send('start');
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await run(calls);
  const elapsed = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  child.send('stop');
  const { cpuUs } = await next();
  close();
  return { serverUs: (cpuUs as number) / calls, clientUs: (cpu.user + cpu.system) / calls, perSecond: (calls * 1000) / elapsed };
}

interface Caller {
  readonly call: () => Promise<void>;
  readonly close: () => void;
}

function grpcCaller(port: number): Caller {
  const client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), grpcChannelOptions());
  const payload = Buffer.alloc(FRAME_BYTES - 5, 0x61);
  return {
    call: () => new Promise((resolve, reject) => client.makeUnaryRequest(PATH, identity, identity, payload, (e) => (e === null ? resolve() : reject(e)))),
    close: () => client.close(),
  };
}

/** Calls on one TCP connection, answered in order: each is done once FRAME_BYTES more have come back. */
async function tcpCaller(port: number): Promise<Caller> {
  const socket = net.connect(port, '127.0.0.1');
  socket.setNoDelay(true);
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  const frame = Buffer.alloc(FRAME_BYTES, 0x61);
  const waiting: Array<() => void> = [];
  let received = 0;
  socket.on('data', (chunk: Buffer) => {
    received += chunk.length;
    while (received >= FRAME_BYTES && waiting.length > 0) {
      received -= FRAME_BYTES;
      waiting.shift()!();
    }
  });
  return {
    call: () =>
      new Promise<void>((resolve) => {
        waiting.push(resolve);
        socket.write(frame);
      }),
    close: () => socket.destroy(),
  };
}

if (process.argv[2] === '--server') serverProcess();
else {
  const { values } = parseArgs({ options: { calls: { type: 'string', default: '60000' }, rounds: { type: 'string', default: '3' }, 'in-flight': { type: 'string', default: '64' } } });
  const calls = Number(values.calls);
  const rounds = Number(values.rounds);
  const inFlight = Number(values['in-flight']);
  console.log(`gRPC unary echo (tcp: the same bytes echoed over bare TCP), ${calls} calls per run, ${inFlight} in flight, grpc-js ${(await import('@grpc/grpc-js/package.json', { with: { type: 'json' } })).default.version}, Node ${process.version}`);
  console.log('| round | server | server CPU µs/call | client CPU µs/call | calls/s |');
  console.log('| --- | --- | ---: | ---: | ---: |');
  for (let r = 1; r <= rounds; r++) {
    for (const kind of SERVER_KINDS) {
      const m = await measure(kind, calls, inFlight);
      console.log(`| ${r} | ${kind} | ${m.serverUs.toFixed(1)} | ${m.clientUs.toFixed(1)} | ${m.perSecond.toFixed(0)} |`);
    }
  }
}
