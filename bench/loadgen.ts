// The load generator: a separate process (forked by bench/scm.bench.ts with an IPC channel) that
// keeps N closed-loop callers busy against one system, each issuing its next call as soon as the
// previous one is answered, and reports throughput and latency of the calls answered inside the
// measured window. The same grpc-js library drives both systems:
//   scm:  AllocateContainer through our TypeScript client (ScmClient: follows the leader, retries
//         with the same call id), RATIS/THREE, owner "bench";
//   etcd: KV.Put of a new key with a 128-byte value (etcd v3 API, bench/etcd/kv.proto).
// Protocol (messages over IPC): parent → {cmd:'run', …}; child → {event:'measuring', at} when the
// warm-up ends, {event:'measured', at} when the window closes, then {event:'result', …}. With
// measureMs 0 the window stays open until the parent sends {cmd:'stop'} (failover).
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { ScmClient } from '../src/client/scm-client.js';
import { grpcChannelOptions } from '../src/grpc-options.js';
import { TlsMaterial } from '../src/server/tls.js';
import { summarize, type LatencySummary } from './lib/stats.js';

/** The files a TLS client presents (the cluster CA, its certificate and key) and the service it expects. */
export interface ClientTlsFiles {
  readonly caFile: string;
  readonly certFile: string;
  readonly keyFile: string;
  readonly serviceId: string;
}

export type LoadTarget =
  | { readonly kind: 'scm'; readonly addresses: readonly string[]; readonly tls?: ClientTlsFiles }
  | { readonly kind: 'etcd'; readonly endpoint: string };

export interface RunCommand {
  readonly cmd: 'run';
  readonly target: LoadTarget;
  readonly callers: number;
  readonly channels: number;
  readonly warmupMs: number;
  /** 0: until {cmd:'stop'}. */
  readonly measureMs: number;
  /** Report every acknowledgement's time (failover). */
  readonly recordAcks: boolean;
  /** Overall deadline of one call, retries included. */
  readonly callDeadlineMs: number;
}

export interface LoadResult {
  readonly event: 'result';
  readonly ops: number;
  readonly errors: number;
  readonly errorSamples: readonly string[];
  readonly measuredMs: number;
  readonly opsPerSec: number;
  readonly latency: LatencySummary;
  /** CPU seconds this process used inside the window. */
  readonly loadgenCpuSeconds: number;
  /** Acknowledgement times (epoch ms) inside the window, when asked for. */
  readonly acks?: readonly number[];
  /** Times (epoch ms) of failed calls inside the window, when acks were asked for. */
  readonly errorTimes?: readonly number[];
}

export const ETCD_VALUE_BYTES = 128;

/** Epoch milliseconds with sub-millisecond resolution, comparable with the parent's. */
export function nowMs(): number {
  return performance.timeOrigin + performance.now();
}

type Call = (caller: number, seq: number) => Promise<void>;

interface Driver {
  readonly call: Call;
  close(): void;
}

function scmDriver(addresses: readonly string[], channels: number, deadlineMs: number, tls: ClientTlsFiles | undefined): Driver {
  const material = tls !== undefined ? TlsMaterial.load({ caFile: tls.caFile, certFile: tls.certFile, keyFile: tls.keyFile }, { kind: 'client' }) : undefined;
  const channel = material !== undefined && tls !== undefined ? { channel: (address: string) => material.channel(address, { serviceId: tls.serviceId }) } : {};
  const clients = Array.from({ length: channels }, () => new ScmClient({ addresses, deadlineMs, attemptTimeoutMs: Math.min(10_000, deadlineMs), ...channel }));
  return {
    call: async (caller) => {
      await (clients[caller % clients.length] as ScmClient).allocateContainer({ replicationType: 'RATIS', replicationFactor: 'THREE', owner: 'bench' });
    },
    close: () => {
      for (const c of clients) c.close();
    },
  };
}

interface EtcdKvClient extends grpc.Client {
  Put(request: { key: Buffer; value: Buffer }, options: grpc.CallOptions, callback: (err: grpc.ServiceError | null) => void): grpc.ClientUnaryCall;
}

function etcdDriver(endpoint: string, channels: number, deadlineMs: number): Driver {
  const definition = protoLoader.loadSync(fileURLToPath(new URL('./etcd/kv.proto', import.meta.url)), { keepCase: true, longs: String, defaults: false });
  const pkg = grpc.loadPackageDefinition(definition)['etcdserverpb'] as grpc.GrpcObject;
  const Kv = pkg['KV'] as grpc.ServiceClientConstructor;
  // The channel options our client's channels get (channelz off), so both systems' calls cost the
  // load generator the same apart from the messages.
  const clients = Array.from({ length: channels }, () => new Kv(endpoint, grpc.credentials.createInsecure(), grpcChannelOptions()) as unknown as EtcdKvClient);
  const value = Buffer.alloc(ETCD_VALUE_BYTES, 0x61);
  const run = `${process.pid.toString(36)}${Date.now().toString(36)}`;
  return {
    call: (caller, seq) =>
      new Promise<void>((resolve, reject) => {
        const client = clients[caller % clients.length] as EtcdKvClient;
        // A new key per call, as every allocation is a new container.
        client.Put({ key: Buffer.from(`bench/${run}/${caller}/${seq}`), value }, { deadline: Date.now() + deadlineMs }, (err) => (err === null ? resolve() : reject(err)));
      }),
    close: () => {
      for (const c of clients) c.close();
    },
  };
}

async function run(cmd: RunCommand, send: (m: unknown, then?: () => void) => void, stopRequested: Promise<void>): Promise<LoadResult> {
  const driver = cmd.target.kind === 'scm' ? scmDriver(cmd.target.addresses, cmd.channels, cmd.callDeadlineMs, cmd.target.tls) : etcdDriver(cmd.target.endpoint, cmd.channels, cmd.callDeadlineMs);
  const latencies: number[] = [];
  const acks: number[] = [];
  const errorTimes: number[] = [];
  const errorSamples = new Set<string>();
  let errors = 0;
  let ops = 0;
  let measuring = false;
  let stopping = false;
  let measureEnd = Number.POSITIVE_INFINITY;

  const caller = async (id: number): Promise<void> => {
    let seq = 0;
    while (!stopping) {
      const t0 = nowMs();
      try {
        await driver.call(id, seq++);
        const t1 = nowMs();
        if (measuring && t1 <= measureEnd) {
          ops++;
          latencies.push(t1 - t0);
          if (cmd.recordAcks) acks.push(t1);
        }
      } catch (err) {
        const t1 = nowMs();
        if (measuring && t1 <= measureEnd) {
          errors++;
          if (cmd.recordAcks) errorTimes.push(t1);
          if (errorSamples.size < 5) errorSamples.add((err as Error).message.slice(0, 300));
        }
        // A call that fails at once (no server yet) must not spin.
        if (t1 - t0 < 5) await new Promise((r) => setTimeout(r, 5));
      }
    }
  };

  const callers = Array.from({ length: cmd.callers }, (_, i) => caller(i));
  await new Promise((r) => setTimeout(r, cmd.warmupMs));
  const measureStart = nowMs();
  const cpuStart = process.cpuUsage();
  measuring = true;
  send({ event: 'measuring', at: measureStart });
  if (cmd.measureMs > 0) await new Promise((r) => setTimeout(r, cmd.measureMs));
  else await stopRequested;
  measureEnd = nowMs();
  const cpu = process.cpuUsage(cpuStart);
  const cpuSeconds = (cpu.user + cpu.system) / 1e6;
  send({ event: 'measured', at: measureEnd });
  stopping = true;
  await Promise.all(callers);
  driver.close();
  const measuredMs = measureEnd - measureStart;
  return {
    event: 'result',
    ops,
    errors,
    errorSamples: [...errorSamples],
    measuredMs,
    opsPerSec: ops / (measuredMs / 1000),
    latency: summarize(latencies),
    loadgenCpuSeconds: cpuSeconds,
    ...(cmd.recordAcks ? { acks, errorTimes } : {}),
  };
}

if (process.send !== undefined && process.argv[1] === fileURLToPath(import.meta.url)) {
  const send = (m: unknown, then?: () => void): void => {
    // The callback runs once the message is handed to the channel: only then may it be closed (a
    // large result, every acknowledgement time of a failover run, would otherwise be lost).
    process.send?.(m, undefined, {}, () => then?.());
  };
  let stop: () => void = () => undefined;
  const stopRequested = new Promise<void>((resolve) => (stop = resolve));
  process.on('message', (msg: RunCommand | { cmd: 'stop' }) => {
    if (msg.cmd === 'stop') stop();
    else
      run(msg, send, stopRequested).then(
        (result) => send(result, () => process.disconnect()),
        (err: unknown) => {
          process.exitCode = 1;
          send({ event: 'error', message: (err as Error).stack ?? String(err) }, () => process.disconnect());
        },
      );
  });
  send({ event: 'ready' });
}
