// Shared fixtures for the snapshot tests: temp dirs, a populated scm.db, raw DB dumps for
// equality checks, and an InterSCM server on 127.0.0.1:0.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as http2 from 'node:http2';
import * as grpc from '@grpc/grpc-js';
import { Level } from 'level';
import { formatTransactionInfo, transactionInfoTable, TRANSACTION_INFO_KEY, type TermIndex } from '../../src/statemachine/transaction-info.js';
import { encodeAppliedConfiguration, RAFT_CONFIGURATION_KEY } from '../../src/statemachine/raft-configuration.js';
import { META_TABLE } from '../../src/statemachine/tables.js';
import { CheckpointProvider, type CheckpointProviderOptions } from '../../src/snapshot/checkpoint-provider.js';
import { registerInterScmService, type InterScmServiceOptions, type ServeRefusal } from '../../src/snapshot/download-service.js';
import { interScmClientConstructor, interScmServiceDefinition, type CopyDBCheckpointRequest, type CopyDBCheckpointResponse } from '../../src/snapshot/inter-scm-proto.js';

export const CLUSTER_ID = 'CID-5f1f4a2e-0c0b-4d0e-9d7e-1234567890ab';

export async function withTempDir<T>(prefix: string, fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  try {
    return await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function containerKey(id: number): Buffer {
  const key = Buffer.alloc(8);
  key.writeBigUInt64BE(BigInt(id));
  return key;
}

/** Writes `count` container-like records from `firstId` and #TRANSACTIONINFO in one atomic batch. */
export async function applyContainers(db: Level<string, string>, firstId: number, count: number, ti: TermIndex, valueBytes = 200): Promise<void> {
  const containers = db.sublevel<Buffer, Buffer>('containers', { keyEncoding: 'buffer', valueEncoding: 'buffer' });
  const ops = [];
  for (let id = firstId; id < firstId + count; id++) {
    // Half text, half hash bytes: compresses about as well as real container records do.
    const digest = createHash('sha256').update(String(id)).digest();
    const value = Buffer.alloc(valueBytes, `container-${id}-state-OPEN-pipeline-${id % 7};`);
    for (let i = 0; i + 32 <= valueBytes; i += 64) digest.copy(value, i);
    ops.push({ type: 'put' as const, key: containerKey(id), value, sublevel: containers });
  }
  // One atomic batch, as the state machine applies: data and #TRANSACTIONINFO together.
  await db.batch([
    ...ops,
    { type: 'put', key: TRANSACTION_INFO_KEY, value: formatTransactionInfo(ti), sublevel: transactionInfoTable(db) },
  ] as never);
}

/** Creates and fills an scm.db at `dir`, returning it open. */
export async function createScmDb(dir: string, containers: number, ti: TermIndex): Promise<Level<string, string>> {
  const db = new Level<string, string>(dir);
  await db.open();
  await db.sublevel('pipelines').put('pipeline-1', 'RATIS/THREE');
  await db.sublevel('sequenceId').put('containerId', String(containers));
  // The Raft configuration the state machine records with every applied configuration entry.
  const configuration = { term: 1, index: 1, voters: [1, 2, 3].map((k) => ({ id: `scm${k}`, address: `127.0.0.1:${9894 + 100 * (k - 1)}`, priority: 0 })), nonVoters: [] };
  await db.sublevel(META_TABLE).put(RAFT_CONFIGURATION_KEY, encodeAppliedConfiguration(configuration));
  await applyContainers(db, 1, containers, ti);
  return db;
}

/** Every raw key/value of a DB (all sublevels), hex-encoded, in key order. */
export async function dumpDb(db: Level<string, string>): Promise<string[]> {
  const out: string[] = [];
  for await (const [k, v] of db.iterator({ keyEncoding: 'buffer', valueEncoding: 'buffer' })) {
    out.push(`${(k as unknown as Buffer).toString('hex')}=${(v as unknown as Buffer).toString('hex')}`);
  }
  return out;
}

export async function dumpDbAt(dir: string): Promise<string[]> {
  const db = new Level<string, string>(dir, { createIfMissing: false });
  await db.open();
  try {
    return await dumpDb(db);
  } finally {
    await db.close();
  }
}

export async function startServer(register: (server: grpc.Server) => void): Promise<{ server: grpc.Server; address: string; stop: () => Promise<void> }> {
  const server = new grpc.Server();
  register(server);
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p)));
  });
  return {
    server,
    address: `127.0.0.1:${port}`,
    stop: () => new Promise<void>((resolve) => {
      server.forceShutdown();
      resolve();
    }),
  };
}

/**
 * A relay in front of a leader's InterSCM service that stands for a leader going away mid-transfer:
 * the k-th call (from 1) is passed through until `cutAfter(k)` messages have gone, then broken off
 * with UNAVAILABLE (Infinity: passed through whole). Every request is recorded.
 */
export async function startCuttingRelay(
  leaderAddress: string,
  cutAfter: (call: number) => number,
): Promise<{ address: string; requests: CopyDBCheckpointRequest[]; stop: () => Promise<void> }> {
  const Client = interScmClientConstructor();
  const upstream = new Client(leaderAddress, grpc.credentials.createInsecure()) as unknown as grpc.Client & { download(r: unknown): grpc.ClientReadableStream<CopyDBCheckpointResponse> };
  const requests: CopyDBCheckpointRequest[] = [];
  const open = new Set<grpc.ClientReadableStream<CopyDBCheckpointResponse>>();
  const relay = await startServer((s) =>
    s.addService(interScmServiceDefinition(), {
      download: (call: grpc.ServerWritableStream<CopyDBCheckpointRequest, CopyDBCheckpointResponse>) => {
        requests.push(call.request);
        const cut = cutAfter(requests.length);
        const up = upstream.download(call.request);
        open.add(up);
        // The follower hanging up (or the relay stopping) ends the leader's side too: nothing is
        // written to a stream already gone after the test has ended.
        call.on('cancelled', () => up.cancel());
        void (async () => {
          let n = 0;
          for await (const m of up as AsyncIterable<CopyDBCheckpointResponse>) {
            if (call.cancelled) return;
            if (n++ === cut) {
              up.cancel();
              call.emit('error', { code: grpc.status.UNAVAILABLE, details: 'leader went away' });
              return;
            }
            call.write(m);
          }
          call.end();
        })()
          .catch(() => undefined) // the leader's side cancelled: the follower's side is already gone
          .finally(() => open.delete(up));
      },
    }),
  );
  return {
    address: relay.address,
    requests,
    stop: async () => {
      for (const up of open) up.cancel();
      upstream.close();
      await relay.stop();
    },
  };
}

/**
 * A manual clock for the InterSCM service (`ServeTimers`): time moves only in `advance`, which runs
 * the timers that fall due in order. Counts cancellations, so a test can see a wait end.
 */
export class ManualTimers {
  private time = 1_000_000;
  private nextId = 1;
  private readonly timers = new Map<number, { at: number; ms: number; fn: () => void }>();
  /** Timers cancelled before they fired. */
  cancelled = 0;

  now(): number {
    return this.time;
  }

  setTimeout(fn: () => void, ms: number): () => void {
    const id = this.nextId++;
    this.timers.set(id, { at: this.time + ms, ms, fn });
    return () => {
      if (this.timers.delete(id)) this.cancelled++;
    };
  }

  /** The delays of the timers waiting to fire. */
  pending(): number[] {
    return [...this.timers.values()].map((t) => t.ms);
  }

  advance(ms: number): void {
    const end = this.time + ms;
    for (;;) {
      let due: [number, { at: number; fn: () => void }] | undefined;
      for (const entry of this.timers) if (entry[1].at <= end && (due === undefined || entry[1].at < due[1].at)) due = entry;
      if (due === undefined) break;
      this.timers.delete(due[0]);
      this.time = due[1].at;
      due[1].fn();
    }
    this.time = end;
  }
}

/**
 * A download call over raw HTTP/2 that is never read: what a stuck or hostile client leaves behind.
 * HTTP/2 flow control stops the leader once the windows are full. A reset by the leader, or the
 * test's own session.destroy(), ends it with an error: tests look at `closed` and `rstCode`.
 */
export function unreadDownload(session: http2.ClientHttp2Session): http2.ClientHttp2Stream {
  const request = Buffer.from([0x08, 0x01]); // CopyDBCheckpointRequestProto { flush: true }
  const frame = Buffer.alloc(5 + request.length);
  frame.writeUInt32BE(request.length, 1);
  request.copy(frame, 5);
  const stream = session.request({ ':method': 'POST', ':path': '/InterSCMProtocolService/download', 'content-type': 'application/grpc', te: 'trailers' });
  stream.end(frame);
  stream.pause();
  stream.on('error', () => undefined);
  return stream;
}

export interface Logged {
  readonly level: string;
  readonly message: string;
  readonly fields: Record<string, unknown> | undefined;
}

export interface ServingLeader {
  readonly address: string;
  readonly provider: CheckpointProvider;
  readonly checkpointsDir: string;
  /** What the service logged, served (bytes per download) and refused, in order. */
  readonly logs: Logged[];
  readonly served: number[];
  readonly refused: ServeRefusal[];
}

export interface ServingLeaderSetup {
  /** Containers in the leader's scm.db (its size decides the checkpoint's). */
  readonly containers: number;
  readonly termIndex: TermIndex;
  readonly provider?: Partial<CheckpointProviderOptions>;
  readonly service?: Partial<InterScmServiceOptions>;
}

/** An InterSCM service on loopback over a fresh scm.db, recording what it logs, serves and refuses. */
export async function withServingLeader(setup: ServingLeaderSetup, body: (leader: ServingLeader) => Promise<void>): Promise<void> {
  await withTempDir('snap-serve-', async (dir) => {
    const db = await createScmDb(join(dir, 'scm.db'), setup.containers, setup.termIndex);
    const checkpointsDir = join(dir, 'db.checkpoints');
    const provider = new CheckpointProvider({ db: () => db, checkpointsDir, ...setup.provider });
    const logs: Logged[] = [];
    const served: number[] = [];
    const refused: ServeRefusal[] = [];
    const { address, stop } = await startServer((s) =>
      registerInterScmService(s, {
        clusterId: CLUSTER_ID,
        provider,
        log: (level, message, fields) => logs.push({ level, message, fields }),
        onServed: (bytes) => served.push(bytes),
        onRefused: (reason) => refused.push(reason),
        ...setup.service,
      }),
    );
    try {
      await body({ address, provider, checkpointsDir, logs, served, refused });
    } finally {
      await stop();
      await db.close();
    }
  });
}

/** Polls `check` (every 5 ms, for about 10 s) until it holds; fails naming `what` otherwise. */
export async function until(what: string, check: () => boolean): Promise<void> {
  for (let i = 0; i < 2000 && !check(); i++) await new Promise((r) => setTimeout(r, 5));
  assert.ok(check(), `timed out waiting for ${what}`);
}
