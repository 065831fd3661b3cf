// Test helpers: temp scm.db directories and a tiny "leader" that turns commands into log entries.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeCommand, type ScmCommand } from '../../src/statemachine/commands.js';
import type { LogEntry } from '../../src/log-entry.js';
import type { ReplicationFactor, ReplicationType } from '../../src/statemachine/model.js';

export async function withTempDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'scm-sm-'));
  try {
    return await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

type Body = ScmCommand extends infer C ? (C extends ScmCommand ? Omit<C, 'clientId' | 'callId' | 'timestamp'> : never) : never;

/** Hands out log positions, call ids and (fake, deterministic) leader timestamps. */
export class EntryFactory {
  index = 0;
  term = 1;
  callId = 0;
  clock = 1_700_000_000_000;

  constructor(readonly clientId = 'client-1') {}

  command(body: Body, overrides: Partial<Pick<ScmCommand, 'clientId' | 'callId' | 'timestamp'>> = {}): ScmCommand {
    this.clock += 10;
    return { clientId: this.clientId, callId: ++this.callId, timestamp: this.clock, ...overrides, ...body } as ScmCommand;
  }

  data(cmd: ScmCommand): LogEntry {
    return this.raw(encodeCommand(cmd));
  }

  raw(data: Uint8Array): LogEntry {
    return { term: this.term, index: ++this.index, payload: { kind: 'data', data } };
  }

  config(): LogEntry {
    return { term: this.term, index: ++this.index, payload: { kind: 'config', peers: [{ id: 'scm1', address: '127.0.0.1:9894', priority: 0 }], listeners: [] } };
  }

  metadata(commitIndex: number): LogEntry {
    return { term: this.term, index: ++this.index, payload: { kind: 'metadata', commitIndex } };
  }

  /** Entries registering `n` datanodes dn-1..dn-n. */
  datanodes(n: number, from = 1): LogEntry[] {
    const out: LogEntry[] = [];
    for (let i = from; i < from + n; i++) {
      out.push(this.data(this.command({ type: 'registerDatanode', uuid: `dn-${i}`, hostname: `host${i}`, ipAddress: `10.0.0.${i}`, ports: [{ name: 'RATIS', value: 9858 }] })));
    }
    return out;
  }

  pipeline(id: string, members: string[], type: ReplicationType = 'RATIS', factor: ReplicationFactor = 'THREE', extra: { initialState?: 'ALLOCATED' | 'OPEN' } = {}): LogEntry {
    return this.data(this.command({ type: 'createPipeline', pipelineId: id, members, replicationType: type, replicationFactor: factor, leaderId: members[0] ?? '', ...extra }));
  }

  allocate(pipelineId: string, type: ReplicationType = 'RATIS', factor: ReplicationFactor = 'THREE', owner = 'om1'): LogEntry {
    return this.data(this.command({ type: 'allocateContainer', replicationType: type, replicationFactor: factor, owner, pipelineId }));
  }
}

/** A cluster with datanodes dn-1..dn-3 and an OPEN RATIS/THREE pipeline 'p1' and STAND_ALONE/ONE 'p-one'. */
export function basicSetup(f: EntryFactory): LogEntry[] {
  return [f.config(), ...f.datanodes(3), f.pipeline('p1', ['dn-1', 'dn-2', 'dn-3']), f.pipeline('p-one', ['dn-1'], 'STAND_ALONE', 'ONE')];
}

/** The workloads' seeded generator (shared with the storage tests). */
export { mulberry32 } from '../seeded-random.js';
