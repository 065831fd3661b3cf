// Applying must write the same bytes, batch for batch, whatever is done to make it cheaper: every
// scm.db batch the state machine hands to LevelDB (each operation's type, key and value bytes, in
// order: what LevelDB's write-ahead log records) and every result it returns are hashed over a
// seeded workload of many allocations with the other commands mixed in, and compared with the hashes
// the generic apply path (protobufjs encoders, one write per effect) gave for the same workload
// before the apply path was optimized. The workload covers what the fast paths must not get wrong:
// clients and owners with non-ASCII and long (≥128 byte) strings, call ids beyond 2^32, retries of
// earlier calls (answered from the retry cache, or executed again once evicted), records expired and
// evicted in the batch that wrote them, failed allocations (error outcomes), container state changes
// (also of a container allocated in the same batch), pipeline closes that finalize containers,
// consistency markers (a batch of their own), configuration, metadata, empty and malformed entries,
// and a clock that stalls, jumps and goes back.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, type Hash } from 'node:crypto';
import { Level } from 'level';
import { encodeCommand, type ScmCommand } from '../../src/statemachine/commands.js';
import { ScmStateMachine, type ApplyResult } from '../../src/statemachine/state-machine.js';
import type { ScmDb } from '../../src/statemachine/tables.js';
import type { LogEntry } from '../../src/log-entry.js';
import { withTempDir, mulberry32 as random } from './helpers.js';

const CLIENTS = ['client-1', 'client-2', 'client-3', 'om-7f3a9c', 'клиент-ü', `c-${'x'.repeat(200)}`];
const OWNERS = ['om1', 'ömer', 'o'.repeat(130), 'om2'];
const EVENTS = ['FINALIZE', 'QUASI_CLOSE', 'CLOSE', 'FORCE_CLOSE', 'DELETE', 'CLEANUP'] as const;

/** The workload: a setup batch, then `batches` batches of mixed entries. */
function workload(seed: number, batches: number): LogEntry[][] {
  const rnd = random(seed);
  const pick = <T>(values: readonly T[]): T => values[Math.floor(rnd() * values.length)] as T;
  let index = 0;
  let clock = 1_700_000_000_000;
  const callIds = new Map<string, number>();
  const sent: Uint8Array[] = [];
  let allocated = 0;
  let pipelines = 1;
  /** The OPEN RATIS/THREE pipeline most allocations go to (closed and replaced now and then). */
  let open = 'p1';
  const data = (bytes: Uint8Array): LogEntry => ({ term: 3, index: ++index, payload: { kind: 'data', data: bytes } });
  const command = (body: object, clientId = pick(CLIENTS)): LogEntry => {
    const step = rnd();
    if (step < 0.05) clock += 7_000; // everything recorded before has expired
    else if (step < 0.1) clock -= 100; // a leader whose clock is behind the last one's
    else if (step > 0.3) clock += Math.floor(rnd() * 40);
    let callId = (callIds.get(clientId) ?? 0) + 1;
    if (rnd() < 0.1) callId += 2 ** 40; // wide varints
    callIds.set(clientId, callId);
    const bytes = encodeCommand({ clientId, callId, timestamp: clock, ...body } as ScmCommand);
    sent.push(bytes);
    return data(bytes);
  };
  const allocate = (): LogEntry => {
    const r = rnd();
    const [pipelineId, type, factor] = r < 0.8 ? [open, 'RATIS', 'THREE'] : r < 0.88 ? ['p-one', 'STAND_ALONE', 'ONE'] : r < 0.94 ? ['p-alloc', 'RATIS', 'THREE'] : ['p-one', 'RATIS', 'THREE'];
    allocated++;
    return command({ type: 'allocateContainer', replicationType: type, replicationFactor: factor, owner: pick(OWNERS), pipelineId });
  };
  const setup: LogEntry[] = [{ term: 3, index: ++index, payload: { kind: 'config', peers: [{ id: 'scm1', address: '127.0.0.1:9894', priority: 0 }], listeners: [] } }];
  for (let i = 1; i <= 3; i++) {
    setup.push(command({ type: 'registerDatanode', uuid: `dn-${i}`, hostname: `host${i}`, ipAddress: `10.0.0.${i}`, ports: [{ name: 'RATIS', value: 9858 }] }, 'admin'));
  }
  setup.push(command({ type: 'createPipeline', pipelineId: 'p1', members: ['dn-1', 'dn-2', 'dn-3'], replicationType: 'RATIS', replicationFactor: 'THREE', leaderId: 'dn-1' }, 'admin'));
  setup.push(command({ type: 'createPipeline', pipelineId: 'p-one', members: ['dn-2'], replicationType: 'STAND_ALONE', replicationFactor: 'ONE' }, 'admin'));
  setup.push(command({ type: 'createPipeline', pipelineId: 'p-alloc', members: ['dn-1', 'dn-2', 'dn-3'], replicationType: 'RATIS', replicationFactor: 'THREE', initialState: 'ALLOCATED' }, 'admin'));
  const out: LogEntry[][] = [setup];
  for (let b = 0; b < batches; b++) {
    const batch: LogEntry[] = [];
    const size = 1 + Math.floor(rnd() * (rnd() < 0.5 ? 8 : 70));
    for (let k = 0; k < size; k++) {
      const r = rnd();
      if (r < 0.62) batch.push(allocate());
      else if (r < 0.72 && sent.length > 0) batch.push(data(sent[sent.length - 1 - Math.floor(rnd() * Math.min(sent.length, 120))] as Uint8Array)); // a retry
      else if (r < 0.82) batch.push(command({ type: 'updateContainerState', containerId: 1 + Math.floor(rnd() * (allocated + 2)), event: pick(EVENTS) }));
      else if (r < 0.825) {
        // The open pipeline closes (its OPEN containers are finalized) and a new one takes its place.
        const next = `p${++pipelines}`;
        batch.push(command({ type: 'closePipeline', pipelineId: open }, 'admin'));
        batch.push(command({ type: 'createPipeline', pipelineId: next, members: ['dn-3', 'dn-1', 'dn-2'], replicationType: 'RATIS', replicationFactor: 'THREE', leaderId: 'dn-3' }, 'admin'));
        open = next;
      } else if (r < 0.835) batch.push(command({ type: 'createPipeline', pipelineId: open, members: ['dn-1', 'dn-2', 'dn-3'], replicationType: 'RATIS', replicationFactor: 'THREE' }, 'admin')); // exists
      else if (r < 0.845) batch.push(command({ type: 'deactivatePipeline', pipelineId: 'p-one' }, 'admin'), command({ type: 'activatePipeline', pipelineId: 'p-one' }, 'admin'));
      else if (r < 0.87) batch.push(command({ type: 'markConsistency' }));
      else if (r < 0.88) batch.push(command({ type: 'registerDatanode', uuid: `dn-${1 + Math.floor(rnd() * 5)}`, hostname: 'h', ipAddress: '10.0.1.1', ports: [{ name: 'STANDALONE', value: 9859 }] }));
      else if (r < 0.89) batch.push(data(Uint8Array.from({ length: 1 + Math.floor(rnd() * 20) }, () => Math.floor(rnd() * 256)))); // malformed
      else if (r < 0.9) batch.push(data(new Uint8Array(0)));
      else if (r < 0.905) batch.push({ term: 3, index: ++index, payload: { kind: 'metadata', commitIndex: index - 1 } });
      else if (r < 0.91) batch.push({ term: 3, index: ++index, payload: { kind: 'config', peers: [{ id: 'scm1', address: '127.0.0.1:9894', priority: 0 }], listeners: [{ id: 'scm2', address: '127.0.0.2:9894', priority: 0 }] } });
      else batch.push(allocate());
    }
    out.push(batch);
  }
  return out;
}

function bytesOf(value: unknown): Buffer {
  if (typeof value === 'string') return Buffer.from(value, 'utf8');
  if (value instanceof Uint8Array) return Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  throw new Error(`unexpected ${typeof value} in a batch operation`);
}

function hashPart(hash: Hash, part: Buffer | string): void {
  const bytes = typeof part === 'string' ? Buffer.from(part, 'utf8') : part;
  const length = Buffer.alloc(4);
  length.writeUInt32BE(bytes.length);
  hash.update(length);
  hash.update(bytes);
}

interface Hashes {
  /** Every batch LevelDB was given: each operation's type, key bytes and value bytes, in order. */
  readonly writes: string;
  /** Every result applyBatch returned. */
  readonly results: string;
  /** The state machine's digest of scm.db at the end. */
  readonly digest: string;
  readonly batches: number;
}

/** What the workload exercised (checked, so that a change to it cannot quietly drop a case). */
interface Coverage {
  readonly outcomes: Record<string, number>;
  readonly replayed: number;
  readonly deletes: number;
  readonly nonAsciiClients: number;
}

async function applyWorkload(
  seed: number,
  batches: number,
  options: { retryCacheTimeoutMs?: number; retryCacheMaxEntries?: number },
): Promise<{ hashes: Hashes; coverage: Coverage }> {
  return withTempDir(async (dir) => {
    const writes = createHash('sha256');
    let written = 0;
    let deletes = 0;
    const openDb = (location: string): ScmDb => {
      const db = new Level<string, string>(location);
      const native = db as unknown as { _batch(ops: Array<{ type: string; key: unknown; value?: unknown }>, options: unknown): Promise<void> };
      const original = native._batch.bind(db);
      native._batch = (ops, opts) => {
        written++;
        hashPart(writes, `batch ${ops.length}`);
        for (const op of ops) {
          hashPart(writes, op.type);
          if (op.type === 'del') deletes++;
          hashPart(writes, bytesOf(op.key));
          if (op.type === 'put') hashPart(writes, bytesOf(op.value));
        }
        return original(ops, opts);
      };
      return db;
    };
    const results = createHash('sha256');
    const outcomes: Record<string, number> = {};
    let replayed = 0;
    let nonAsciiClients = 0;
    const sm = await ScmStateMachine.open(dir, { ...options, openDb });
    try {
      for (const batch of workload(seed, batches)) {
        const applied: ApplyResult[] = await sm.applyBatch(batch);
        hashPart(results, JSON.stringify(applied));
        for (const r of applied) {
          const kind = r.outcome.ok ? r.outcome.value.kind : r.outcome.error.code;
          outcomes[kind] = (outcomes[kind] ?? 0) + 1;
          if (r.replayed) replayed++;
          if (r.command !== undefined && /[^ -~]/.test(r.command.clientId)) nonAsciiClients++;
        }
      }
      return {
        hashes: { writes: writes.digest('hex'), results: results.digest('hex'), digest: await sm.digest(), batches: written },
        coverage: { outcomes, replayed, deletes, nonAsciiClients },
      };
    } finally {
      await sm.close();
    }
  });
}

/** Every kind of outcome, retries, deletes and non-ASCII clients, each many times. */
function assertCovers(coverage: Coverage): void {
  for (const kind of ['container', 'pipeline', 'datanode', 'marker', 'NO_PIPELINE', 'NOT_FOUND', 'INVALID_STATE_TRANSITION', 'ALREADY_EXISTS', 'MALFORMED_COMMAND']) {
    assert.ok((coverage.outcomes[kind] ?? 0) >= 20, `${kind}: ${coverage.outcomes[kind]} results`);
  }
  assert.ok((coverage.outcomes['container'] ?? 0) >= 4_000, `${coverage.outcomes['container']} container results`);
  assert.ok(coverage.replayed >= 100, `${coverage.replayed} replays`);
  assert.ok(coverage.deletes >= 1_000, `${coverage.deletes} deletes`);
  assert.ok(coverage.nonAsciiClients >= 100, `${coverage.nonAsciiClients} results for non-ASCII clients`);
}

test('small retry cache (records expire and are evicted within a batch): the same scm.db batches and results as the generic apply path', async () => {
  const { hashes, coverage } = await applyWorkload(12, 400, { retryCacheTimeoutMs: 5_000, retryCacheMaxEntries: 40 });
  assertCovers(coverage);
  assert.deepEqual(hashes, {
    writes: '76f7136ad9be209dd916b31c1c6be9efba10cdb0796a395f65dc9196f432f661',
    results: '504ec62158d10e965f60cb094978dca99c2c25317310a4807363f0ec387b0b10',
    digest: 'bb50690e64c0d241fa88f9763740f7ebab7ecedda9c4c108177b1187c8b554ed',
    batches: 651,
  });
});

test('default retry cache: the same scm.db batches and results as the generic apply path', async () => {
  const { hashes, coverage } = await applyWorkload(7, 300, {});
  assertCovers(coverage);
  assert.deepEqual(hashes, {
    writes: 'c3aa02c896d80a256548e7ed0f42c2239d1c88cb05e7b07403fec897c4c8c4a5',
    results: 'a84ae5574d520a658b3e2568a9e80228ff26675c2c681a3e3da9e5a6a5c69c01',
    digest: 'e13a8f5688199b46bad335a855875e045d0e8a008f899502ccf941fff81764f4',
    batches: 432,
  });
});
