// The production RaftDriver over hand-controlled parts: a log whose fsyncs complete only when the
// test says so, a state machine whose applies do the same, a transport that records what leaves.
// What is checked is the order of work, never time: which writes have started while another piece
// of work is still in progress, and which answers exist at each point.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryLog, RaftNode, type LogEntry, type Message } from '../../src/raft/index.js';
import { RaftDriver } from '../../src/server/raft-driver.js';
import type { RaftLogStore, ReplicatedStateMachine, Scheduler, TimerHandle } from '../../src/server/raft-ports.js';
import type { ApplyResult, AppliedConfiguration, TermIndex } from '../../src/statemachine/index.js';
import { makeConfig, membership } from '../raft/cluster.js';

/** A gate: writes (or applies) wait on it while it is held. */
class Gate {
  private held = false;
  private waiting: Array<() => void> = [];

  hold(): void {
    this.held = true;
  }

  release(): void {
    this.held = false;
    const w = this.waiting;
    this.waiting = [];
    for (const f of w) f();
  }

  pass(): Promise<void> {
    if (!this.held) return Promise.resolve();
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  get pending(): number {
    return this.waiting.length;
  }
}

class FakeLog implements RaftLogStore {
  readonly mem = new MemoryLog();
  readonly fsync = new Gate();
  /** Indexes of the entries handed to append(), in call order. */
  readonly appended: number[] = [];
  private tail: Promise<void> = Promise.resolve();

  firstIndex(): number {
    return this.mem.firstIndex();
  }
  lastIndex(): number {
    return this.mem.lastIndex();
  }
  term(index: number): number | undefined {
    return this.mem.term(index);
  }
  entries(lo: number, hi: number, maxBytes: number): LogEntry[] {
    return this.mem.entries(lo, hi, maxBytes);
  }
  private durable(): Promise<void> {
    // Writes become durable in order, each once the gate lets its fsync through.
    this.tail = this.tail.then(() => this.fsync.pass());
    return this.tail;
  }
  append(entries: readonly LogEntry[]): Promise<void> {
    for (const e of entries) this.appended.push(e.index);
    this.mem.append(entries);
    return this.durable();
  }
  truncateFrom(index: number): Promise<void> {
    this.mem.truncateAfter(index - 1);
    return this.durable();
  }
  purgeBelow(): Promise<void> {
    return Promise.resolve();
  }
  reset(): Promise<void> {
    throw new Error('not in these tests');
  }
  saveMeta(): Promise<void> {
    return this.durable();
  }
  saveConf(): Promise<void> {
    return Promise.resolve();
  }
}

class FakeStateMachine implements ReplicatedStateMachine {
  readonly gate = new Gate();
  /** Indexes of the entries handed to applyBatch, in call order. */
  readonly started: number[] = [];
  private applied: TermIndex = { term: 0, index: 0 };
  private queue: Promise<unknown> = Promise.resolve();

  /** Report results through onComputed before waiting at the gate (the write), as ScmStateMachine does. */
  computesEarly = false;

  applyBatch(entries: readonly LogEntry[], onComputed?: (results: readonly ApplyResult[]) => void): Promise<ApplyResult[]> {
    for (const e of entries) this.started.push(e.index);
    const run = this.queue.then(async () => {
      const results = entries
        .filter((e) => e.payload.kind === 'data' && e.payload.data.length > 0)
        .map((e): ApplyResult => ({ term: e.term, index: e.index, outcome: { ok: true, value: { kind: 'none' } } as unknown as ApplyResult['outcome'], replayed: false }));
      if (this.computesEarly) onComputed?.(results);
      await this.gate.pass();
      const last = entries[entries.length - 1] as LogEntry;
      this.applied = { term: last.term, index: last.index };
      return results;
    });
    this.queue = run.catch(() => undefined);
    return run;
  }
  lastApplied(): TermIndex {
    return this.applied;
  }
  snapshotPoint(): TermIndex {
    return { term: 0, index: 0 };
  }
  recordSnapshotPoint(): Promise<TermIndex> {
    return Promise.resolve(this.applied);
  }
  configuration(): AppliedConfiguration | undefined {
    return undefined;
  }
}

class ManualScheduler implements Scheduler {
  ticker: (() => void) | undefined;
  clock = 0;
  now(): number {
    return this.clock;
  }
  after(): TimerHandle {
    return { cancel: () => undefined };
  }
  every(_ms: number, fn: () => void): TimerHandle {
    this.ticker = fn;
    return { cancel: () => (this.ticker = undefined) };
  }
  soon(fn: () => void): void {
    setImmediate(fn);
  }
}

/** Lets the event loop run `turns` times (the driver's loop, its awaits and setImmediates). */
async function turns(n = 20): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise((resolve) => setImmediate(resolve));
}

async function until(what: string, predicate: () => boolean): Promise<void> {
  for (let i = 0; i < 2_000; i++) {
    if (predicate()) return;
    await new Promise((resolve) => setImmediate(resolve));
  }
  assert.fail(`never happened: ${what}`);
}

function build(voters: string[]) {
  const log = new FakeLog();
  const sm = new FakeStateMachine();
  const scheduler = new ManualScheduler();
  const sent: Message[] = [];
  const core = new RaftNode(makeConfig('a', 3, { preVote: false }), log, {
    hardState: { term: 0, votedFor: '' },
    membership: membership(voters),
    membershipIndex: 0,
    applied: 0,
  });
  const fatal: Error[] = [];
  const driver = new RaftDriver(
    { core, log, sm, transport: { send: (m) => sent.push(m) }, scheduler, savedConfIndex: 0 },
    { tickMs: 10, snapshotThreshold: 1_000_000, purgeEnabled: false, purgeGap: 0, purgeUptoSnapshotIndex: false, requestTimeoutMs: 60_000, clientAddressOf: () => undefined },
    { onError: (e) => fatal.push(e), onFatal: (e) => fatal.push(e) },
  );
  return { log, sm, scheduler, sent, core, driver, fatal };
}

/** Ticks until node a campaigns (its term is durable once the test's log lets the fsync through). */
async function campaign(parts: ReturnType<typeof build>): Promise<void> {
  parts.driver.start();
  for (let i = 0; i < 40 && parts.core.currentRole !== 'candidate' && parts.core.currentRole !== 'leader'; i++) {
    parts.scheduler.ticker?.();
    await turns(2);
  }
}

const data = (text: string): Uint8Array => new TextEncoder().encode(text);

describe('RaftDriver: time', () => {
  it('ticks for the clock time that passed, however few timer callbacks came (a process that was stopped)', async () => {
    const parts = build(['a', 'b']);
    parts.driver.start();
    // 30 ticks of 10 ms pass while the process is stopped; on waking its timer fires once.
    parts.scheduler.clock = 300;
    parts.scheduler.ticker?.();
    await turns(2);
    assert.equal(parts.core.currentRole, 'candidate', 'an election timeout (10 to 20 ticks) has passed');
    await parts.driver.stop();
  });

  it('a read catches up on the clock before a lease is believed', async () => {
    const parts = build(['a', 'b']);
    parts.driver.start();
    parts.scheduler.clock = 300;
    // No timer callback at all yet: the read itself counts the time.
    await assert.rejects(parts.driver.readBarrier());
    assert.equal(parts.core.currentRole, 'candidate');
    await parts.driver.stop();
  });
});

describe('RaftDriver: pipelining', () => {
  it('persists the next entries while the committed ones before them are still being applied', async () => {
    const parts = build(['a']);
    const { driver, sm, log } = parts;
    await campaign(parts);
    await until('a leads and applied its first entry', () => driver.isLeader() && sm.lastApplied().index >= 1);

    sm.gate.hold();
    const first = driver.propose(data('one'));
    await until('the first proposal is being applied', () => sm.gate.pending === 1);
    const second = driver.propose(data('two'));
    const secondIndex = log.mem.lastIndex() + 1;
    await turns();
    assert.ok(log.appended.includes(secondIndex), `entry ${secondIndex} was not handed to the log while entry ${secondIndex - 1} was applying (appended: ${log.appended.join(',')})`);

    sm.gate.release();
    const results = await Promise.all([first, second]);
    assert.deepEqual(results.map((r) => r.index), [secondIndex - 1, secondIndex]);
    await driver.stop();
    assert.deepEqual(parts.fatal, []);
  });

  it('answers proposals in log order and only once their entries are applied', async () => {
    const parts = build(['a']);
    const { driver, sm } = parts;
    await campaign(parts);
    await until('a leads and applied its first entry', () => driver.isLeader() && sm.lastApplied().index >= 1);

    sm.gate.hold();
    const answered: number[] = [];
    const proposals = ['x', 'y', 'z'].map((t) => driver.propose(data(t)).then((r) => void answered.push(r.index)));
    await until('an apply is waiting', () => sm.gate.pending >= 1);
    await turns();
    assert.deepEqual(answered, [], 'a proposal was answered before its entry was applied');
    sm.gate.release();
    await Promise.all(proposals);
    assert.deepEqual(answered, [...answered].sort((x, y) => x - y));
    await driver.stop();
  });

  it("answers a proposal once its result is computed, without waiting for the state machine's write", async () => {
    const parts = build(['a']);
    const { driver, sm } = parts;
    await campaign(parts);
    await until('a leads and applied its first entry', () => driver.isLeader() && sm.lastApplied().index >= 1);
    sm.computesEarly = true;
    sm.gate.hold();
    let answered: number | undefined;
    const p = driver.propose(data('one')).then((r) => (answered = r.index));
    await until('the apply is waiting for its write', () => sm.gate.pending === 1);
    await turns();
    assert.equal(answered, sm.lastApplied().index + 1, 'the proposal was not answered from the computed result');
    sm.gate.release();
    await p;
    await driver.stop();
  });

  it('stop() waits for the apply in progress', async () => {
    const parts = build(['a']);
    const { driver, sm } = parts;
    await campaign(parts);
    await until('a leads and applied its first entry', () => driver.isLeader() && sm.lastApplied().index >= 1);
    sm.gate.hold();
    const p = driver.propose(data('one'));
    await until('the proposal is being applied', () => sm.gate.pending === 1);
    let stopped = false;
    const stopping = driver.stop().then(() => (stopped = true));
    await turns();
    assert.equal(stopped, false, 'stop() returned while an apply was still running');
    sm.gate.release();
    await stopping;
    assert.equal((await p).index, sm.lastApplied().index);
  });
});

describe('RaftDriver: durability before counting', () => {
  it("a leader does not count its own entries before its fsync: one follower's ack alone commits nothing", async () => {
    const parts = build(['a', 'b', 'c']);
    const { driver, core, sm, log, sent } = parts;
    await campaign(parts);
    await until('a campaigned', () => core.currentRole === 'candidate');
    await until('the vote requests left', () => sent.some((m) => m.type === 'vote'));
    driver.step({ type: 'vote-response', from: 'b', to: 'a', term: core.status().term, reject: false });
    await until('a leads', () => driver.isLeader());
    // The leader's first entry, acknowledged by b: committed once a's own fsync is done too.
    await until('the first entry is applied', () => {
      const last = log.mem.lastIndex();
      if (last >= 1 && !sent.some((m) => m.type === 'append-response')) {
        driver.step({ type: 'append-response', from: 'b', to: 'a', term: core.status().term, reject: false, index: last, hintIndex: 0, hintTerm: 0 });
      }
      return sm.lastApplied().index >= 1;
    });

    log.fsync.hold();
    let answered = false;
    const p = driver.propose(data('held')).then((r) => {
      answered = true;
      return r;
    });
    const index = core.status().lastIndex;
    await until("the append for b left while a's own fsync is held", () => sent.some((m) => m.type === 'append' && m.to === 'b' && m.entries.some((e) => e.index === index)));
    driver.step({ type: 'append-response', from: 'b', to: 'a', term: core.status().term, reject: false, index, hintIndex: 0, hintTerm: 0 });
    await turns();
    assert.equal(core.status().commit < index, true, `entry ${index} committed with only b durable`);
    assert.equal(answered, false);
    log.fsync.release();
    assert.equal((await p).index, index);
    await driver.stop();
  });
});
