// The production RaftDriver over hand-controlled parts: a log whose fsyncs complete only when the
// test says so, a state machine whose applies do the same, a transport that records what leaves.
// What is checked is the order of work, never time: which writes have started while another piece
// of work is still in progress, and which answers exist at each point.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryLog, RaftNode, entrySize, type LogEntry, type Message } from '../../src/raft/index.js';
import { MAX_ENTRIES_HELD, RaftDriver, purgeBound, type DriverHooks } from '../../src/server/raft-driver.js';
import type { RaftLogStore, ReplicatedStateMachine, Scheduler, TimerHandle } from '../../src/server/raft-ports.js';
import type { ApplyResult, AppliedConfiguration, OnComputed, TermIndex } from '../../src/statemachine/index.js';
import { makeConfig, membership } from '../raft/cluster.js';
import { MemoryLevel } from 'memory-level';
import { encodeCommand } from '../../src/statemachine/commands.js';
import { InvalidArgumentError } from '../../src/errors.js';
import { raftMessageSizes } from '../../src/server/raft-message-sizes.js';
import { ScmStateMachine } from '../../src/statemachine/state-machine.js';
import type { ScmDb } from '../../src/statemachine/tables.js';
import { readTransactionInfo } from '../../src/statemachine/transaction-info.js';

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

  /**
   * Report results through onComputed before the write (which waits at the gate), as
   * ScmStateMachine does: the write starts at once, or once a promise onComputed returned settles.
   */
  computesEarly = false;
  /** Called as each batch's write starts. */
  onWrite: ((lastIndex: number) => void) | undefined;

  applyBatch(entries: readonly LogEntry[], onComputed?: OnComputed): Promise<ApplyResult[]> {
    for (const e of entries) this.started.push(e.index);
    const run = this.queue.then(async () => {
      const results = entries
        .filter((e) => e.payload.kind === 'data' && e.payload.data.length > 0)
        .map((e): ApplyResult => ({ term: e.term, index: e.index, outcome: { ok: true, value: { kind: 'none' } } as unknown as ApplyResult['outcome'], replayed: false }));
      if (this.computesEarly) {
        const answered = onComputed?.(results);
        if (answered !== undefined) await answered;
      }
      const last = entries[entries.length - 1] as LogEntry;
      this.onWrite?.(last.index);
      await this.gate.pass();
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
  writeApplied(): Promise<boolean> {
    return Promise.resolve(false); // every batch is written by its apply here
  }
  configuration(): AppliedConfiguration | undefined {
    return undefined;
  }
}

class ManualScheduler implements Scheduler {
  ticker: (() => void) | undefined;
  clock = 0;
  /** Timers handed out and not cancelled; they run only when the test fires them. */
  readonly timers = new Set<{ readonly ms: number; readonly fn: () => void }>();
  now(): number {
    return this.clock;
  }
  after(ms: number, fn: () => void): TimerHandle {
    const timer = { ms, fn };
    this.timers.add(timer);
    return { cancel: () => this.timers.delete(timer) };
  }
  /** Runs (once) the pending timers of exactly `ms`; returns how many ran. */
  fire(ms: number): number {
    const due = [...this.timers].filter((t) => t.ms === ms);
    for (const t of due) {
      this.timers.delete(t);
      t.fn();
    }
    return due.length;
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

function build(voters: string[], options: { commitForwardDelayMs?: number; maxEntryBytes?: { bytes: number; from: string } } = {}, onSend?: (m: Message) => void, onFlush?: () => void) {
  return assemble(new FakeStateMachine(), voters, options, onSend, onFlush);
}

function assemble<S extends ReplicatedStateMachine>(sm: S, voters: string[], options: { commitForwardDelayMs?: number; applyWriteDelayMs?: number; maxEntryBytes?: { bytes: number; from: string } } = {}, onSend?: (m: Message) => void, onFlush?: () => void, hooks: Omit<DriverHooks, 'onError' | 'onFatal'> = {}) {
  const log = new FakeLog();
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
    { core, log, sm, transport: { send: (m) => (onSend !== undefined ? onSend(m) : sent.push(m)), flush: () => onFlush?.() }, scheduler, savedConfIndex: 0 },
    { tickMs: 10, snapshotThreshold: 1_000_000, purgeEnabled: false, purgeGap: 0, purgeUptoSnapshotIndex: false, requestTimeoutMs: 60_000, clientAddressOf: () => undefined, maxEntryBytes: { bytes: raftMessageSizes().entryBytes, from: 'the default frame cap' }, ...options },
    { ...hooks, onError: (e) => fatal.push(e), onFatal: (e) => fatal.push(e) },
  );
  return { log, sm, scheduler, sent, core, driver, fatal };
}

/** Ticks until node a campaigns (its term is durable once the test's log lets the fsync through). */
async function campaign(parts: Pick<ReturnType<typeof build>, 'driver' | 'core' | 'scheduler'>): Promise<void> {
  parts.driver.start();
  for (let i = 0; i < 40 && parts.core.currentRole !== 'candidate' && parts.core.currentRole !== 'leader'; i++) {
    parts.scheduler.ticker?.();
    await turns(2);
  }
}

const data = (text: string): Uint8Array => new TextEncoder().encode(text);

describe('RaftDriver: time', () => {
  /** a leads b: b voted for it; b then says nothing more. */
  async function leading() {
    const parts = build(['a', 'b']);
    await campaign(parts);
    await until('the vote request left', () => parts.sent.some((m) => m.type === 'vote'));
    parts.driver.step({ type: 'vote-response', from: 'b', to: 'a', term: parts.core.currentTerm, reject: false });
    await until('a leads', () => parts.driver.isLeader());
    return parts;
  }

  it('a leader ticks for the clock time that passed, however few timer callbacks came (a process that was stopped)', async () => {
    const parts = await leading();
    // 30 ticks of 10 ms pass while the process is stopped; on waking its timer fires once.
    parts.scheduler.clock += 300;
    parts.scheduler.ticker?.();
    await turns(2);
    assert.equal(parts.core.currentRole, 'follower', 'an election timeout (10 ticks) passed without hearing from b: check quorum steps down');
    await parts.driver.stop();
  });

  it("a leader's read catches up on the clock before a lease is believed", async () => {
    const parts = await leading();
    parts.scheduler.clock += 300;
    // No timer callback at all yet: the read itself counts the time.
    await assert.rejects(parts.driver.readBarrier());
    assert.equal(parts.core.currentRole, 'follower');
    await parts.driver.stop();
  });

  it('a follower whose timer fires once after a long gap ticks once: the leader\'s heartbeats that waited behind the gap are stepped before it could time out', async () => {
    const parts = build(['a', 'b']);
    parts.driver.start();
    // The loop was held up for 30 ticks (a long fdatasync on the loop, a stopped process). Node runs
    // the timer before the I/O that queued meanwhile.
    parts.scheduler.clock = 300;
    parts.scheduler.ticker?.();
    await turns(2);
    assert.equal(parts.core.currentRole, 'follower', 'campaigned on time it had not seen the leader in');
    assert.equal(parts.core.currentTerm, 0);
    // The heartbeat that waited, then the follower's own time goes on as usual.
    parts.driver.step({ type: 'heartbeat', from: 'b', to: 'a', term: 1, commit: 0, commitTerm: 0, readRound: 0, sentTick: 1 });
    for (let i = 0; i < 9; i++) parts.scheduler.ticker?.();
    await turns(2);
    assert.equal(parts.core.currentRole, 'follower');
    assert.equal(parts.core.leaderId, 'b');
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

  it("the answer leaves before the state machine's write starts: the write waits a turn for it", async () => {
    const parts = build(['a']);
    const { driver, sm } = parts;
    await campaign(parts);
    await until('a leads and applied its first entry', () => driver.isLeader() && sm.lastApplied().index >= 1);
    sm.computesEarly = true;
    const order: string[] = [];
    sm.onWrite = (index) => order.push(`write ${index}`);
    const index = sm.lastApplied().index + 1;
    // The answer goes through a chain of promise reactions, as a client's call does.
    const p = driver
      .propose(data('one'))
      .then((r) => r)
      .then((r) => order.push(`answered ${r.index}`));
    await until('the batch was written', () => sm.lastApplied().index >= index);
    await p;
    assert.deepEqual(order, [`answered ${index}`, `write ${index}`]);
    await driver.stop();
    assert.deepEqual(parts.fatal, []);
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

describe('RaftDriver: the largest entry (maxEntryBytes)', () => {
  it('proposes an entry of exactly the limit; one byte more is refused INVALID_ARGUMENT naming the setting, and nothing is appended', async () => {
    const parts = build(['a'], { maxEntryBytes: { bytes: 100, from: 'a quarter of the.byte.limit' } });
    const { driver, log } = parts;
    await campaign(parts);
    await until('a leads', () => driver.isLeader());
    const atLimit = new Uint8Array(100 - entrySize({ term: 0, index: 0, payload: { kind: 'data', data: new Uint8Array(0) } }));
    const taken = await driver.propose(atLimit);
    assert.ok(taken.index > 0);
    const last = log.lastIndex();
    assert.equal(last, taken.index);
    await assert.rejects(driver.propose(new Uint8Array(atLimit.byteLength + 1)), (err: unknown) => {
      assert.ok(err instanceof InvalidArgumentError, String(err));
      assert.equal(err.message, 'the command is 101 bytes as a Raft entry, over the 100 one entry may hold (a quarter of the.byte.limit)');
      return true;
    });
    await turns();
    assert.equal(log.lastIndex(), last, 'nothing was appended');
    await driver.stop();
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

describe("RaftDriver: a Ready's messages are written when it has queued them", () => {
  it("a leader's appends are flushed to the transport before its own log write starts", async () => {
    const events: string[] = [];
    const sent: Message[] = [];
    let watchIndex = 0;
    const parts = build(['a', 'b', 'c'], {}, (m) => {
      sent.push(m);
      events.push(`send ${m.type} ${m.to}`);
    }, () => {
      events.push('flush');
      if (watchIndex === 0) return;
      // PeerTransport writes to its sockets in flush(): the log's write must not come first.
      events.push(`entry ${log.appended.includes(watchIndex) ? '' : 'not '}written at the flush`);
    });
    const { driver, core, sm, log } = parts;
    await campaign(parts);
    await until('the vote requests left', () => sent.some((m) => m.type === 'vote'));
    driver.step({ type: 'vote-response', from: 'b', to: 'a', term: core.status().term, reject: false });
    await until('a leads', () => driver.isLeader());
    await until('the first entry is applied', () => {
      const last = log.mem.lastIndex();
      if (last >= 1 && sm.lastApplied().index < 1) {
        for (const from of ['b', 'c']) driver.step({ type: 'append-response', from, to: 'a', term: core.status().term, reject: false, index: last, hintIndex: 0, hintTerm: 0 });
      }
      return sm.lastApplied().index >= 1;
    });
    await turns();

    log.fsync.hold();
    events.length = 0;
    const index = log.mem.lastIndex() + 1;
    watchIndex = index;
    const p = driver.propose(data('x'));
    await until('the appends of the new entry were queued', () => sent.filter((m) => m.type === 'append' && m.entries.some((e) => e.index === index)).length === 2);
    await until("a's own fsync started", () => log.fsync.pending >= 1);
    assert.deepEqual(events, ['send append b', 'send append c', 'flush', 'entry not written at the flush']);
    assert.ok(log.appended.includes(index), 'the entry was written after the flush');
    log.fsync.release();
    for (const from of ['b', 'c']) driver.step({ type: 'append-response', from, to: 'a', term: core.status().term, reject: false, index, hintIndex: 0, hintTerm: 0 });
    assert.equal((await p).index, index);
    await driver.stop();
    assert.deepEqual(parts.fatal, []);
  });

  it("a follower's acknowledgement is flushed once its entries are durable", async () => {
    const events: string[] = [];
    const parts = build(['a', 'b'], {}, (m) => events.push(`send ${m.type} ${m.to}${m.type === 'append-response' ? ` ${m.index}` : ''}`), () => events.push('flush'));
    const { driver, log } = parts;
    driver.start();
    log.fsync.hold();
    const entry: LogEntry = { term: 1, index: 1, payload: { kind: 'data', data: data('e1') } };
    driver.step({ type: 'append', from: 'b', to: 'a', term: 1, prevIndex: 0, prevTerm: 0, entries: [entry], commit: 0 });
    await until('the entry is being written', () => log.fsync.pending >= 1);
    await turns();
    assert.equal(events.some((e) => e.startsWith('send append-response')), false, 'acknowledged before durable');
    events.length = 0;
    log.fsync.release();
    await until('the acknowledgement left', () => events.includes('send append-response b 1'));
    assert.deepEqual(events.slice(events.indexOf('send append-response b 1')), ['send append-response b 1', 'flush']);
    await driver.stop();
    assert.deepEqual(parts.fatal, []);
  });
});

describe('RaftDriver: acknowledgements before applies', () => {
  it("a follower's acknowledgement leaves before the apply of the entries its append committed starts", async () => {
    // The transport writes on the next turn of the event loop, as PeerTransport does (setImmediate).
    const order: string[] = [];
    const parts = build(['a', 'b'], {}, (m) => {
      setImmediate(() => order.push(`sent ${m.type} ${m.type === 'append-response' ? m.index : ''}`));
    });
    const { driver, sm } = parts;
    const applyBatch = sm.applyBatch.bind(sm);
    sm.applyBatch = (entries, onComputed) => {
      order.push(`apply ${entries.map((e) => e.index).join(',')}`);
      return applyBatch(entries, onComputed);
    };
    driver.start();
    const entry = (index: number): LogEntry => ({ term: 1, index, payload: { kind: 'data', data: data(`e${index}`) } });
    driver.step({ type: 'append', from: 'b', to: 'a', term: 1, prevIndex: 0, prevTerm: 0, entries: [entry(1)], commit: 0 });
    await until('entry 1 is acknowledged', () => order.includes('sent append-response 1'));
    // The next append carries entry 2 and the commit of entry 1.
    driver.step({ type: 'append', from: 'b', to: 'a', term: 1, prevIndex: 1, prevTerm: 1, entries: [entry(2)], commit: 1 });
    await until('entry 1 is applied', () => sm.lastApplied().index >= 1);
    await until('entry 2 is acknowledged', () => order.includes('sent append-response 2'));
    assert.ok(order.indexOf('sent append-response 2') < order.indexOf('apply 1'), order.join(' | '));
    await driver.stop();
    assert.deepEqual(parts.fatal, []);
  });
});

describe('RaftDriver: forwarding the commit index', () => {
  /** a leads b and c (both acknowledged its first entry, so both are being replicated to). */
  async function leading(delayMs: number) {
    const parts = build(['a', 'b', 'c'], { commitForwardDelayMs: delayMs });
    const { driver, core, sm, log, sent } = parts;
    await campaign(parts);
    await until('the vote requests left', () => sent.some((m) => m.type === 'vote'));
    driver.step({ type: 'vote-response', from: 'b', to: 'a', term: core.currentTerm, reject: false });
    await until('a leads', () => driver.isLeader());
    await until('the first entry is applied', () => {
      const last = log.mem.lastIndex();
      if (last >= 1 && sm.lastApplied().index < 1) {
        for (const from of ['b', 'c']) driver.step({ type: 'append-response', from, to: 'a', term: core.currentTerm, reject: false, index: last, hintIndex: 0, hintTerm: 0 });
      }
      return sm.lastApplied().index >= 1;
    });
    parts.scheduler.fire(delayMs);
    await turns();
    return parts;
  }

  /** Proposes, lets b acknowledge it, and waits for the answer (committed and applied at a). */
  async function commitOne(parts: Awaited<ReturnType<typeof leading>>, text: string): Promise<number> {
    const { driver, core, sent } = parts;
    const p = driver.propose(data(text));
    const index = core.lastIndex;
    await until('the append for b left', () => sent.some((m) => m.type === 'append' && m.to === 'b' && m.entries.some((e) => e.index === index)));
    driver.step({ type: 'append-response', from: 'b', to: 'a', term: core.currentTerm, reject: false, index, hintIndex: 0, hintTerm: 0 });
    assert.equal((await p).index, index);
    await turns();
    return index;
  }

  const commitOnly = (sent: Message[], index: number): Message[] => sent.filter((m) => m.type === 'append' && m.entries.length === 0 && m.commit === index);

  it('sends a commit advance on its own only once commitForwardDelayMs has passed', async () => {
    const parts = await leading(5);
    const index = await commitOne(parts, 'x');
    assert.deepEqual(commitOnly(parts.sent, index), [], 'a commit-only append left before the delay');
    assert.equal(parts.scheduler.fire(5), 1, 'one timer armed for the delay');
    await turns();
    assert.deepEqual(commitOnly(parts.sent, index).map((m) => m.to).sort(), ['b', 'c']);
    await parts.driver.stop();
    assert.deepEqual(parts.fatal, []);
  });

  it('an append that leaves before the delay carries the commit instead', async () => {
    const parts = await leading(5);
    const first = await commitOne(parts, 'x');
    parts.driver.propose(data('y')).catch(() => undefined);
    await until('the append carrying y left', () => parts.sent.some((m) => m.type === 'append' && m.to === 'c' && m.entries.some((e) => e.index === first + 1)));
    const carrying = parts.sent.filter((m) => m.type === 'append' && m.entries.some((e) => e.index === first + 1));
    assert.ok(carrying.every((m) => m.type === 'append' && m.commit === first));
    parts.scheduler.fire(5);
    await turns();
    assert.deepEqual(commitOnly(parts.sent, first), [], 'the commit was sent again on its own');
    await parts.driver.stop();
  });

  it('each commit advance gets the whole delay: one carried meanwhile does not let the next leave early', async () => {
    const parts = await leading(5);
    const first = await commitOne(parts, 'x');
    // y's append carries x's commit; y itself commits just before the timer armed for x fires.
    const second = await commitOne(parts, 'y');
    assert.equal(second, first + 1);
    assert.equal(parts.scheduler.fire(5), 1, 'the timer armed for x fires');
    await turns();
    assert.deepEqual(commitOnly(parts.sent, second), [], "y's commit left alone before its own delay");
    assert.equal(parts.scheduler.fire(5), 1, 'a timer is armed for y');
    await turns();
    assert.deepEqual(commitOnly(parts.sent, second).map((m) => m.to).sort(), ['b', 'c']);
    await parts.driver.stop();
  });

  it('with commitForwardDelayMs 0 the commit advance leaves at once', async () => {
    const parts = await leading(0);
    const index = await commitOne(parts, 'x');
    assert.deepEqual(commitOnly(parts.sent, index).map((m) => m.to).sort(), ['b', 'c']);
    await parts.driver.stop();
  });
});

describe('RaftDriver: where the log is purged after a snapshot point', () => {
  it('gap below the point, held by a follower that needs more, but never by more than MAX_ENTRIES_HELD', () => {
    const M = MAX_ENTRIES_HELD;
    for (const [point, gap, floor, expected] of [
      [5_000, 1_000, undefined, 4_000], // nobody holds anything
      [5_000, 1_000, 4_500, 4_000], // the follower needs nothing the gap does not keep
      [5_000, 1_000, 2_000, 2_000], // held back to what it needs
      [5_000 + M, 0, 10, 5_000], // a follower 1,000,000 + 4,990 behind: held only 1,000,000
      [5_000 + M, 0, 5_000, 5_000], // exactly at the bound
    ] as const) {
      assert.equal(purgeBound(point, gap, floor), expected, `point ${point}, gap ${gap}, floor ${floor}`);
    }
  });
});

describe('RaftDriver: deferred scm.db writes (applyWriteDelayMs)', () => {
  /** Node a leading alone over the real state machine on an in-memory scm.db. */
  async function leadingOnRealStateMachine(applyWriteDelayMs: number) {
    const db = new MemoryLevel<string, string>() as unknown as ScmDb;
    const sm = await ScmStateMachine.open('mem/scm.db', { openDb: () => db });
    const parts = assemble(sm, ['a'], { applyWriteDelayMs });
    await campaign(parts);
    await until('a leads and applied its first entry', () => parts.driver.isLeader() && sm.lastApplied().index >= 1);
    await until('the first entry is written', () => sm.writtenApplied().index >= 1 || parts.scheduler.fire(applyWriteDelayMs) > 0);
    return { ...parts, db, sm };
  }

  const register = (n: number): Uint8Array =>
    encodeCommand({ type: 'registerDatanode', clientId: 'c', callId: n, timestamp: 1_700_000_000_000 + n, uuid: `dn-${n}`, hostname: `h${n}`, ipAddress: `10.0.0.${n}`, ports: [] });

  it('answers at once, writes scm.db once per delay for every apply meanwhile, and a write that fails stops the node', async () => {
    const parts = await leadingOnRealStateMachine(50);
    const { driver, sm, db, scheduler } = parts;
    const before = sm.writtenApplied();
    const results = [];
    for (let n = 1; n <= 3; n++) results.push(await driver.propose(register(n))); // three applies, one after another
    const last = results.at(-1)!.index;
    assert.ok(results.every((r) => r.outcome.ok));
    assert.equal(sm.lastApplied().index, last);
    assert.deepEqual(await readTransactionInfo(db), before, 'scm.db does not hold the applies yet');
    assert.equal([...scheduler.timers].filter((t) => t.ms === 50).length, 1, 'one write is due, however many applies came');

    assert.equal(scheduler.fire(50), 1);
    await until('scm.db holds every apply', () => sm.writtenApplied().index === last);
    assert.equal((await readTransactionInfo(db)).index, last);

    // The next write fails (a full disk): the node stops, as after a failed apply.
    await driver.propose(register(4));
    (db as { batch: unknown }).batch = () => Promise.reject(new Error('disk full'));
    await until('the write of the fourth apply is armed', () => scheduler.fire(50) === 1);
    await until('the failure reached the node', () => parts.fatal.length > 0);
    assert.match(parts.fatal[0]!.message, /disk full/);
    await driver.stop();
  });

  it('with applyWriteDelayMs 0 each apply writes its batch and no write is left for later', async () => {
    const parts = await leadingOnRealStateMachine(0);
    const { driver, sm, db, scheduler } = parts;
    for (let n = 1; n <= 3; n++) {
      const r = await driver.propose(register(n));
      await until(`entry ${r.index} is written`, () => sm.writtenApplied().index === r.index);
      assert.equal((await readTransactionInfo(db)).index, r.index);
    }
    assert.equal([...scheduler.timers].filter((t) => t.ms === 0).length, 0);
    await driver.stop();
    await sm.close();
    assert.deepEqual(parts.fatal, []);
  });

  it('stop() leaves the deferred write to the state machine\'s close, which makes it', async () => {
    const parts = await leadingOnRealStateMachine(50);
    const { driver, sm, db } = parts;
    const r = await driver.propose(register(1));
    await driver.stop();
    assert.equal(parts.scheduler.timers.size, 0, 'no write is left armed after stop');
    await sm.close();
    const reopened = await ScmStateMachine.open('mem/scm.db', { openDb: () => db });
    assert.equal(reopened.lastApplied().index, r.index);
    await reopened.close();
    assert.deepEqual(parts.fatal, []);
  });
});

describe('RaftDriver: members told of their removal', () => {
  it("the node's links follow them: set up before the first message to a removed member leaves, and dropped once the leader stops telling it", async () => {
    const events: string[] = [];
    const built: { core?: RaftNode } = {};
    const parts = assemble(new FakeStateMachine(), ['a', 'b', 'c'], {}, (m) => events.push(`send ${m.type} to ${m.to}`), undefined, {
      onMembershipChange: () => events.push(`links for [${(built.core as RaftNode).status().departing.map((p) => p.id).join(',')}]`),
    });
    built.core = parts.core;
    await campaign(parts);
    await until('the vote request left', () => events.includes('send vote to b'));
    parts.driver.step({ type: 'vote-response', from: 'b', to: 'a', term: parts.core.currentTerm, reject: false });
    await until('a leads', () => parts.driver.isLeader());
    await until("the term's first entry went to b", () => events.includes('send append to b'));
    // Both hold it, so both are streamed to: the append carrying the removal leaves with the Ready
    // that appends it, before the leader's own write.
    for (const from of ['b', 'c']) parts.driver.step({ type: 'append-response', from, to: 'a', term: parts.core.currentTerm, reject: false, index: parts.core.lastIndex, hintIndex: 0, hintTerm: 0 });
    await until("the term's first entry commits", () => parts.core.commitIndex === parts.core.lastIndex);
    events.length = 0;
    const removal = parts.core.removeServer('c');
    assert.ok(removal.ok, removal.ok ? '' : removal.error);
    parts.driver.kick();
    const toC = (): number => events.findIndex((e) => e.endsWith(' to c'));
    await until('a message went to c', () => toC() >= 0);
    const linked = events.indexOf('links for [c]');
    assert.ok(linked >= 0 && linked < toC(), `the link to c is kept before anything is sent to it: ${events.join('; ')}`);
    // b and c say nothing more: the leader stops telling c (and, without a quorum, leads no more).
    for (let i = 0; i < 25; i++) {
      parts.scheduler.clock += 10;
      parts.scheduler.ticker?.();
      await turns(2);
    }
    assert.deepEqual(parts.core.status().departing, []);
    assert.equal(events.filter((e) => e.startsWith('links for')).at(-1), 'links for []', events.join('; '));
    await parts.driver.stop();
    assert.deepEqual(parts.fatal, []);
  });
});
