// The retry cache (outcomes kept encoded, records in a queue) against the plain Map of record
// objects it replaced, over seeded random adds, expiries, lookups and reloads; then through scm.db:
// records in every form survive a reopen, and a corrupt one is refused naming its key.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { encodeOutcome, type CommandOutcome, type RetryCacheRecord } from '../../src/statemachine/records.js';
import { loadOrder, RetryCache } from '../../src/statemachine/retry-cache.js';
import { retryCacheKey } from '../../src/statemachine/tables.js';
import { ScmStateMachine } from '../../src/statemachine/state-machine.js';
import { basicSetup, EntryFactory, withTempDir, mulberry32 as rng } from './helpers.js';

/** The retry cache as it was: a Map in recording order holding the record objects. */
class MapModel {
  readonly entries = new Map<string, RetryCacheRecord>();
  constructor(
    readonly timeoutMs: number,
    readonly maxEntries: number,
  ) {}
  get(clientId: string, callId: number): RetryCacheRecord | undefined {
    return this.entries.get(retryCacheKey(clientId, callId));
  }
  load(records: Iterable<RetryCacheRecord>): void {
    this.entries.clear();
    for (const r of [...records].sort((a, b) => a.logIndex - b.logIndex)) this.entries.set(retryCacheKey(r.clientId, r.callId), r);
  }
  add(record: RetryCacheRecord): string[] {
    this.entries.set(retryCacheKey(record.clientId, record.callId), record);
    const evicted: string[] = [];
    for (const oldest of this.entries.keys()) {
      if (this.entries.size <= this.maxEntries) break;
      this.entries.delete(oldest);
      evicted.push(oldest);
    }
    return evicted;
  }
  expire(clock: number): string[] {
    const expired: string[] = [];
    for (const [key, record] of this.entries) {
      if (record.recordedAt + this.timeoutMs > clock) break;
      this.entries.delete(key);
      expired.push(key);
    }
    return expired;
  }
}

function randomOutcome(r: () => number, n: number): CommandOutcome {
  const k = Math.floor(r() * 5);
  if (k === 0) return { ok: false, error: { code: 'NO_PIPELINE', message: `no pipeline for call ${n} ✗` } };
  if (k === 1) return { ok: true, value: { kind: 'marker' } };
  if (k === 2) {
    return { ok: true, value: { kind: 'pipeline', pipeline: { id: `p${n}`, members: ['a', 'b', 'c'], state: 'OPEN', type: 'RATIS', factor: 'THREE', leaderId: 'a', creationTimestamp: n } } };
  }
  if (k === 3) return { ok: true, value: { kind: 'datanode', datanode: { uuid: `dn${n}`, hostname: 'h', ipAddress: '10.0.0.1', ports: [{ name: 'RATIS', value: 9858 }] } } };
  return {
    ok: true,
    value: {
      kind: 'container',
      container: { containerID: n, state: 'OPEN', pipelineID: 'p1', usedBytes: 0, numberOfKeys: n % 7, stateEnterTime: 1_700_000_000_000 + n, owner: 'om', deleteTransactionId: 0, sequenceId: 0, replicationType: 'RATIS', replicationFactor: 'THREE' },
    },
  };
}

for (const seed of [1, 2, 3]) {
  test(`the retry cache matches the Map of records over random adds, expiries, lookups and reloads (seed ${seed})`, () => {
    const r = rng(seed);
    const timeout = 50;
    const max = [1, 40, 300][seed - 1] as number;
    const cache = new RetryCache(timeout, max);
    const model = new MapModel(timeout, max);
    const clients = ['c1', 'client-ü', 'c#3'];
    let clock = 1_000;
    let logIndex = 0;
    const callIds = new Map<string, number>();
    for (let step = 0; step < 6_000; step++) {
      const op = r();
      if (op < 0.55) {
        const clientId = clients[Math.floor(r() * clients.length)] as string;
        const callId = (callIds.get(clientId) ?? 0) + 1 + Math.floor(r() * 3);
        callIds.set(clientId, callId);
        const record: RetryCacheRecord = { clientId, callId, recordedAt: clock, logIndex: ++logIndex, outcome: randomOutcome(r, logIndex) };
        assert.deepEqual(cache.add({ ...record, result: encodeOutcome(record.outcome) }), model.add(record));
      } else if (op < 0.7) {
        clock += Math.floor(r() * 8);
        assert.deepEqual(cache.expire(clock), model.expire(clock));
      } else if (op < 0.98) {
        const clientId = clients[Math.floor(r() * clients.length)] as string;
        const callId = Math.floor(r() * ((callIds.get(clientId) ?? 0) + 2));
        assert.deepEqual(cache.get(clientId, callId), model.get(clientId, callId));
      } else {
        // A restart: the records, in scm.db's (key) order, loaded into a new cache.
        const stored = [...model.entries.values()].sort((a, b) => (retryCacheKey(a.clientId, a.callId) < retryCacheKey(b.clientId, b.callId) ? -1 : 1));
        if (r() < 0.5) {
          cache.load(stored.map((rec) => ({ ...rec, result: encodeOutcome(rec.outcome) })));
        } else {
          // As the state machine loads scm.db: ranks and sizes first, then each record at its rank.
          const results = stored.map((rec) => encodeOutcome(rec.outcome));
          const rank = loadOrder(stored.map((rec) => rec.logIndex));
          const sizes = new Array<number>(stored.length);
          results.forEach((bytes, i) => (sizes[rank[i] as number] = bytes.length));
          cache.startLoad(sizes);
          stored.forEach((rec, i) => cache.place(rank[i] as number, rec.clientId, rec.callId, rec.recordedAt, rec.logIndex, results[i] as Uint8Array));
          cache.finishLoad();
        }
        model.load(stored);
      }
      assert.equal(cache.size, model.entries.size);
    }
    assert.throws(() => {
      const [last] = [...model.entries.values()].slice(-1);
      if (last !== undefined) cache.add({ ...last, result: encodeOutcome(last.outcome) });
      else throw new Error('already holds');
    }, /already holds/);
  });
}

test('retry-cache records of every kind and form answer the same after a reopen; a corrupt one is refused naming its key', async () => {
  await withTempDir(async (dir) => {
    let sm = await ScmStateMachine.open(dir);
    const f = new EntryFactory('clïent-ü'); // not ASCII: the general decoder's path
    const g = new EntryFactory('client-2');
    g.callId = 1_000;
    const entries = basicSetup(f);
    entries.push(f.allocate('p1'), f.allocate('p-none'), f.data(f.command({ type: 'closePipeline', pipelineId: 'p-one' })));
    const fromG = [g.command({ type: 'allocateContainer', replicationType: 'RATIS', replicationFactor: 'THREE', owner: 'om', pipelineId: 'p1' }), g.command({ type: 'markConsistency' })];
    for (const cmd of fromG) entries.push({ ...g.data(cmd), index: ++f.index });
    await sm.applyBatch(entries);
    const calls = [...Array.from({ length: f.callId }, (_, i) => [f.clientId, i + 1] as const), ...fromG.map((c) => [c.clientId, c.callId] as const)];
    const before = calls.map(([c, id]) => sm.cachedResult(c, id));
    assert.equal(before.filter((o) => o !== undefined).length, calls.length);
    assert.ok(before.some((o) => o?.ok === false));
    await sm.close();
    sm = await ScmStateMachine.open(dir);
    try {
      assert.deepEqual(calls.map(([c, id]) => sm.cachedResult(c, id)), before);
      await sm.db.sublevel('retryCache').put(retryCacheKey('client-2', 1_001), 'garbage');
    } finally {
      await sm.close();
    }
    await assert.rejects(ScmStateMachine.open(dir), /corrupt retry cache record at retryCache\/client-2#1001/);
  });
});

test('records are found by client, then call id: equal call ids of two clients, a client that empties and comes back', () => {
  const cache = new RetryCache(100, 3);
  const outcome = (n: number): CommandOutcome => ({ ok: false, error: { code: 'NOT_FOUND', message: `record ${n}` } });
  const add = (clientId: string, callId: number, at: number, logIndex: number): readonly string[] =>
    cache.add({ clientId, callId, recordedAt: at, logIndex, result: encodeOutcome(outcome(logIndex)) });
  assert.deepEqual(add('a', 7, 0, 1), []);
  assert.deepEqual(add('b', 7, 10, 2), []);
  assert.equal(cache.get('a', 7)?.logIndex, 1);
  assert.equal(cache.get('b', 7)?.logIndex, 2);
  assert.equal(cache.get('a#7', 7), undefined);
  assert.throws(() => add('a', 7, 20, 3), /already holds a#7/);
  assert.deepEqual(cache.expire(100), [retryCacheKey('a', 7)]); // a's only record: a empties
  assert.equal(cache.get('a', 7), undefined);
  assert.equal(cache.get('b', 7)?.clientId, 'b');
  assert.deepEqual(add('a', 7, 30, 4), []); // and comes back with the same call id
  assert.deepEqual(add('a', 8, 40, 5), []);
  assert.deepEqual(add('c', 1, 50, 6), [retryCacheKey('b', 7)]); // over the bound of 3: the oldest leaves
  assert.equal(cache.size, 3);
  assert.deepEqual([cache.get('a', 7)?.logIndex, cache.get('a', 8)?.logIndex, cache.get('c', 1)?.clientId], [4, 5, 'c']);
  assert.deepEqual(cache.get('a', 8)?.outcome, outcome(5));
});

test('loading at final size: ranks by log index (ties in scm.db order), sizes announced per rank, every rank placed once', () => {
  assert.deepEqual([...loadOrder([30, 10, 20, 10])], [3, 0, 2, 1]);
  assert.deepEqual([...loadOrder([])], []);
  const outcome = encodeOutcome({ ok: true, value: { kind: 'marker' } });
  const cache = new RetryCache(60_000, 10);
  cache.startLoad([outcome.length, outcome.length]);
  assert.throws(() => cache.place(2, 'c', 1, 0, 5, outcome), /rank 2 is outside \[0, 2\)/);
  assert.throws(() => cache.place(0, 'c', 1, 0, 5, outcome.subarray(1)), /has \d+ result bytes, \d+ were announced/);
  cache.place(1, 'c', 2, 0, 9, outcome);
  assert.throws(() => cache.place(1, 'c', 3, 0, 9, outcome), /already placed/);
  assert.throws(() => cache.finishLoad(), /1 of 2 records placed/);
  cache.place(0, 'c', 1, 0, 5, outcome);
  cache.finishLoad();
  assert.equal(cache.size, 2);
  assert.equal(cache.get('c', 1)?.logIndex, 5);
  // The oldest (rank 0) leaves first.
  assert.deepEqual(cache.add({ clientId: 'd', callId: 1, recordedAt: 0, logIndex: 10, result: outcome }), []);
  assert.deepEqual(cache.expire(60_000), [retryCacheKey('c', 1), retryCacheKey('c', 2), retryCacheKey('d', 1)]);
});
