// Seeded random chaos histories for the checker's tests: a correct SCM run sequentially (each call
// takes effect at one instant between its invocation and its completion), recorded as the workload
// records it, with overlapping clients, refusals, reads that failed, and unknown outcomes (calls that
// took effect but never answered, and calls that never took effect); and small mutations of such
// histories that may or may not make them impossible.
import { LIFE_CYCLE_EVENTS, LIFE_CYCLE_STATES, type LifeCycleState } from '../../src/api/scm-api.js';
import type { SeededRandom } from '../../src/raft/random.js';
import { LIFECYCLE_TRANSITIONS } from '../../src/statemachine/lifecycle.js';
import { ownerOf, type ChaosCall, type ChaosOutcome, type HistoryEntry, type ListedContainer } from './history.js';

export interface RandomHistoryOptions {
  readonly clients: number;
  readonly calls: number;
  /** Chance that a mutation never answers (having taken effect or not). */
  readonly unknownRate: number;
}

export interface RandomHistory {
  readonly history: HistoryEntry[];
  /** The table at the end, as the post-heal read finds it. */
  readonly finalTable: ListedContainer[];
}

const UNKNOWN: ChaosOutcome = { type: 'unknown', code: 'DEADLINE_EXCEEDED', message: '' };

export function randomContainerHistory(random: SeededRandom, options: RandomHistoryOptions): RandomHistory {
  const table = new Map<number, ListedContainer>();
  let nextId = 1;
  const history: HistoryEntry[] = [];
  type InFlight = { entry: HistoryEntry; answer: ChaosOutcome | undefined };
  const busy: Array<InFlight | undefined> = Array.from({ length: options.clients }, () => undefined);
  const callIds = new Array<number>(options.clients).fill(0);
  let started = 0;

  const newCall = (client: string, callId: number): ChaosCall => {
    const roll = random.nextInt(100);
    const consistency = random.nextInt(8) === 0 ? 'STALE' : 'LINEARIZABLE';
    const id = 1 + random.nextInt(nextId + 1);
    if (roll < 35) return { kind: 'allocate', owner: ownerOf(client, callId) };
    if (roll < 65) return { kind: 'update', id, event: LIFE_CYCLE_EVENTS[random.nextInt(LIFE_CYCLE_EVENTS.length)]! };
    if (roll < 85) return { kind: 'get', id, consistency };
    return { kind: 'list', startId: random.nextInt(nextId + 1), count: 1 + random.nextInt(4), consistency };
  };

  /** The call takes effect now, on the one true table; the answer it will get. */
  const takeEffect = (call: ChaosCall): ChaosOutcome => {
    switch (call.kind) {
      case 'allocate': {
        if (random.nextInt(20) === 0) return { type: 'fail', code: 'FAILED_PRECONDITION', message: 'no pipeline' };
        const id = nextId++;
        table.set(id, { id, state: 'OPEN', owner: call.owner });
        return { type: 'ok', id };
      }
      case 'update': {
        const c = table.get(call.id);
        if (c === undefined) return { type: 'fail', code: 'NOT_FOUND', message: '' };
        const next = LIFECYCLE_TRANSITIONS[call.event][c.state];
        if (next === undefined) return { type: 'fail', code: 'FAILED_PRECONDITION', message: '' };
        table.set(call.id, { ...c, state: next });
        return { type: 'ok', state: next };
      }
      case 'get':
        return { type: 'ok', state: table.get(call.id)?.state ?? 'absent' };
      case 'list': {
        const containers: ListedContainer[] = [];
        for (let id = Math.max(1, call.startId); id < nextId && containers.length < call.count; id++) containers.push(table.get(id)!);
        return { type: 'ok', containers };
      }
    }
  };

  for (let t = 0; started < options.calls || busy.some((b) => b !== undefined); t += random.nextInt(2)) {
    const c = random.nextInt(options.clients);
    const client = `c${c + 1}`;
    const flight = busy[c];
    if (flight === undefined) {
      if (started >= options.calls) continue;
      started++;
      const callId = ++callIds[c]!;
      const call = newCall(client, callId);
      const mutation = call.kind === 'allocate' || call.kind === 'update';
      const entry: HistoryEntry = { client, ...(mutation ? { callId } : {}), call, invoke: t, complete: null, outcome: UNKNOWN, sends: 1 };
      history.push(entry);
      busy[c] = { entry, answer: undefined };
      continue;
    }
    const mutation = flight.entry.call.kind === 'allocate' || flight.entry.call.kind === 'update';
    if (flight.answer === undefined) {
      // A mutation may give up before it took effect (it never will); a read may fail.
      if (mutation && random.nextInt(10_000) < options.unknownRate * 5_000) busy[c] = undefined;
      else if (!mutation && random.nextInt(20) === 0) {
        flight.entry.outcome = { type: 'fail', code: 'UNAVAILABLE', message: '' };
        flight.entry.complete = t;
        busy[c] = undefined;
      } else flight.answer = takeEffect(flight.entry.call);
      continue;
    }
    // It took effect; the answer may be lost.
    if (!(mutation && random.nextInt(10_000) < options.unknownRate * 5_000)) {
      flight.entry.outcome = flight.answer;
      flight.entry.complete = t;
    }
    busy[c] = undefined;
  }
  return { history, finalTable: [...table.values()].sort((a, b) => a.id - b.id) };
}

/** A copy of the history and table with one small change (the mutation's name says which). */
export function mutateContainerHistory(random: SeededRandom, original: RandomHistory): RandomHistory & { readonly mutation: string } {
  const history = original.history.map((e) => ({ ...e }));
  let finalTable = [...original.finalTable];
  const otherState = (s: LifeCycleState | 'absent' | undefined): LifeCycleState | 'absent' => {
    const choices = [...LIFE_CYCLE_STATES, 'absent' as const].filter((x) => x !== s);
    return choices[random.nextInt(choices.length)]!;
  };
  // Picks calls until one the chosen change applies to (a read's answer only if it was LINEARIZABLE).
  for (let attempt = 0; attempt < 50; attempt++) {
  const k = random.nextInt(history.length);
  const e = history[k]!;
  const o = e.outcome;
  switch (random.nextInt(6)) {
    case 0:
      // The answer changes: another id, another state, a list with one entry changed or dropped.
      if (o.type !== 'ok' || ((e.call.kind === 'get' || e.call.kind === 'list') && e.call.consistency === 'STALE')) break;
      if (o.containers !== undefined && o.containers.length === 0) break;
      if (o.id !== undefined) e.outcome = { ...o, id: Math.max(1, o.id + (random.nextInt(2) === 0 ? -1 : 1)) };
      else if (o.state !== undefined) e.outcome = { ...o, state: otherState(o.state) };
      else if (o.containers !== undefined && o.containers.length > 0) {
        const i = random.nextInt(o.containers.length);
        const containers = [...o.containers];
        if (random.nextInt(2) === 0) containers.splice(i, 1);
        else {
          const s = otherState(containers[i]!.state);
          containers[i] = { ...containers[i]!, state: s === 'absent' ? 'OPEN' : s };
        }
        e.outcome = { ...o, containers };
      }
      return { history, finalTable, mutation: `answer of entry ${k}` };
    case 1:
      // A refusal becomes an acknowledgement or the other way round.
      if (e.call.kind !== 'update' || e.complete === null) break;
      e.outcome = o.type === 'ok' ? { type: 'fail', code: random.nextInt(2) === 0 ? 'NOT_FOUND' : 'FAILED_PRECONDITION', message: '' } : { type: 'ok', state: random.nextInt(2) === 0 ? 'CLOSING' : 'CLOSED' };
      return { history, finalTable, mutation: `refusal/ack of entry ${k}` };
    case 2:
      // The call completed earlier than it did (maybe before it took effect).
      if (e.complete === null) break;
      e.complete = e.invoke + random.nextInt(Math.max(1, e.complete - e.invoke));
      return { history, finalTable, mutation: `earlier completion of entry ${k}` };
    case 3:
      // The call was invoked later than it was (maybe after it took effect).
      if (e.complete === null) break;
      (e as { invoke: number }).invoke = e.invoke + 1 + random.nextInt(Math.max(1, e.complete - e.invoke));
      e.complete = Math.max(e.complete, e.invoke);
      return { history, finalTable, mutation: `later invocation of entry ${k}` };
    case 4: {
      // The final table loses a container, or gives an unknown allocation another id.
      if (finalTable.length === 0) break;
      const i = random.nextInt(finalTable.length);
      if (random.nextInt(2) === 0) finalTable = finalTable.filter((_, j) => j !== i);
      else finalTable = finalTable.map((c, j) => (j === i ? { ...c, id: c.id + 1 } : c));
      return { history, finalTable, mutation: `final table entry ${i}` };
    }
    default:
      // An acknowledgement is lost (the call becomes unknown).
      if (e.call.kind !== 'allocate' && e.call.kind !== 'update') break;
      e.outcome = UNKNOWN;
      e.complete = null;
      return { history, finalTable, mutation: `unknown outcome of entry ${k}` };
  }
  }
  return { history, finalTable, mutation: 'none' };
}
