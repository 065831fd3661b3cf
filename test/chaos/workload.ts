// Concurrent clients that allocate containers, change their state and read them (LINEARIZABLE and
// STALE gets and lists), each call recorded with its invocation, completion and outcome. Each client
// is sequential (one call at a time, as a closed loop) and has its own clientId; every mutation has
// a callId of its own. A mutation whose outcome is unknown (the client's deadline passed) is re-sent
// with the same ids before the client does anything else, until it gets an answer or the run stops:
// the retry cache must answer a re-send with the first result, never apply it twice.
import { setTimeout as sleep } from 'node:timers/promises';
import { ScmClientError, type ScmClient } from '../../src/client/scm-client.js';
import { LIFE_CYCLE_EVENTS, type ContainerInfo } from '../../src/api/scm-api.js';
import { SeededRandom } from '../../src/raft/random.js';
import { isDefiniteFailure, ownerOf, type ChaosCall, type ChaosOutcome, type HistoryEntry, type ListedContainer } from './history.js';

export interface WorkloadOptions {
  readonly clients: number;
  readonly seed: number;
  readonly clock: () => number;
  /** A client of the whole cluster for client `name` (clientId = name). */
  readonly connect: (name: string) => ScmClient;
  /** Pause between one client's calls, so the nodes keep some CPU on a small machine. */
  readonly thinkMs: number;
}

const listed = (c: ContainerInfo): ListedContainer => ({ id: c.containerId, state: c.state, owner: c.owner });

function errorCode(err: unknown): { code: string; message: string } {
  if (err instanceof ScmClientError) return { code: err.codeName, message: err.details };
  return { code: 'CLIENT_ERROR', message: (err as Error).message };
}

export class Workload {
  readonly history: HistoryEntry[] = [];
  private stopping = false;
  private loops: Promise<void>[] = [];
  /** Ids of acknowledged allocations, for calls that need an existing container. */
  private readonly known: number[] = [];

  constructor(private readonly options: WorkloadOptions) {}

  start(): void {
    this.loops = Array.from({ length: this.options.clients }, (_, i) => this.clientLoop(`c${i + 1}`, new SeededRandom(this.options.seed * 1_000 + i + 1)));
  }

  /** Stops every client after its current call; unknown outcomes stay unknown. */
  async stop(): Promise<void> {
    this.stopping = true;
    await Promise.all(this.loops);
  }

  /** Acknowledged writes' completion times, ascending (for unavailability). */
  ackTimes(): number[] {
    return this.history
      .filter((e) => (e.call.kind === 'allocate' || e.call.kind === 'update') && e.outcome.type === 'ok' && e.complete !== null)
      .map((e) => e.complete as number)
      .sort((a, b) => a - b);
  }

  private nextCall(random: SeededRandom, owner: () => string): ChaosCall {
    const top = this.known.length === 0 ? 0 : Math.max(...this.known.slice(-50));
    const roll = random.nextInt(100);
    if (this.known.length === 0 || roll < 35) return { kind: 'allocate', owner: owner() };
    if (roll < 55) {
      return { kind: 'update', id: this.known[random.nextInt(this.known.length)] as number, event: LIFE_CYCLE_EVENTS[random.nextInt(LIFE_CYCLE_EVENTS.length)]! };
    }
    const consistency = roll < 70 || (roll >= 75 && roll < 90) ? 'LINEARIZABLE' : 'STALE';
    // Reads aim at recent ids and a little beyond, where allocations race with them.
    const id = Math.max(1, top - 20 + random.nextInt(24));
    if (roll < 75) return { kind: 'get', id, consistency };
    return { kind: 'list', startId: id, count: 1 + random.nextInt(20), consistency };
  }

  private async send(client: ScmClient, entry: HistoryEntry): Promise<ChaosOutcome> {
    const call = entry.call;
    try {
      switch (call.kind) {
        case 'allocate': {
          const r = await client.allocateContainer({ replicationType: 'RATIS', replicationFactor: 'THREE', owner: call.owner }, { callId: entry.callId! });
          return { type: 'ok', id: r.container.containerId };
        }
        case 'update':
          return { type: 'ok', state: (await client.updateContainerState(call.id, call.event, { callId: entry.callId! })).state };
        case 'get':
          return { type: 'ok', state: (await client.getContainer(call.id, { consistency: call.consistency })).state };
        case 'list':
          return { type: 'ok', containers: (await client.listContainers({ startId: call.startId, count: call.count, consistency: call.consistency })).map(listed) };
      }
    } catch (err) {
      const { code, message } = errorCode(err);
      if (call.kind === 'get' && code === 'NOT_FOUND') return { type: 'ok', state: 'absent' };
      // A read that failed observed nothing; a mutation refused for good did not take effect.
      if (call.kind === 'get' || call.kind === 'list' || isDefiniteFailure(code)) return { type: 'fail', code, message };
      return { type: 'unknown', code, message };
    }
  }

  private async clientLoop(name: string, random: SeededRandom): Promise<void> {
    const client = this.options.connect(name);
    let callId = 0;
    let pending: HistoryEntry | undefined;
    while (!this.stopping) {
      let entry = pending;
      if (entry === undefined) {
        const call = this.nextCall(random, () => ownerOf(name, callId + 1));
        const mutation = call.kind === 'allocate' || call.kind === 'update';
        entry = { client: name, ...(mutation ? { callId: ++callId } : {}), call, invoke: this.options.clock(), complete: null, outcome: { type: 'unknown', code: 'PENDING', message: '' }, sends: 0 };
        this.history.push(entry);
      }
      entry.sends++;
      const outcome = await this.send(client, entry);
      entry.outcome = outcome;
      if (outcome.type === 'unknown') {
        pending = entry;
        await sleep(300);
        continue;
      }
      pending = undefined;
      entry.complete = this.options.clock();
      if (entry.call.kind === 'allocate' && outcome.type === 'ok' && outcome.id !== undefined) this.known.push(outcome.id);
      if (this.options.thinkMs > 0) await sleep(random.nextInt(this.options.thinkMs + 1));
    }
  }
}
