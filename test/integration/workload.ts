// What most cluster tests do before the part they test: register datanodes and open a pipeline,
// so that AllocateContainer succeeds, then allocate some containers from a few callers at once.
import type { ScmClient } from '../../src/client/scm-client.js';
import { FACTOR_MEMBERS, type ReplicationFactor } from '../../src/scm-types.js';

/**
 * Registers as many datanodes as a `factor` pipeline has members and opens a RATIS pipeline on
 * them, naming them, or (`picked`) leaving the leader to pick them; returns their uuids.
 */
export async function openPipeline(client: ScmClient, factor: ReplicationFactor = 'THREE', members: 'named' | 'picked' = 'named'): Promise<string[]> {
  const uuids: string[] = [];
  for (let i = 1; i <= FACTOR_MEMBERS[factor]; i++) {
    const datanode = { uuid: `00000000-0000-4000-8000-0000000000d${i}`, hostname: `dn${i}`, ipAddress: `10.0.9.${i}`, ports: [{ name: 'RATIS', value: 9858 }] };
    uuids.push((await client.registerDatanode(datanode)).uuid);
  }
  await client.createPipeline({ replicationType: 'RATIS', replicationFactor: factor, memberIds: members === 'named' ? uuids : [] });
  return uuids;
}

/** `count` allocations on a `factor` pipeline, `inFlight` at a time; each one retried by the client until it succeeds. */
export async function allocate(client: ScmClient, count: number, options: { factor?: ReplicationFactor; inFlight?: number; owner?: string } = {}): Promise<void> {
  const request = { replicationType: 'RATIS', replicationFactor: options.factor ?? 'THREE', owner: options.owner ?? 'test' } as const;
  let started = 0;
  const caller = async (): Promise<void> => {
    while (started < count) {
      started++;
      await client.allocateContainer(request);
    }
  };
  await Promise.all(Array.from({ length: Math.min(options.inFlight ?? 1, count) }, caller));
}
