// A ReplicationGateway for service tests: the members a test gives, and every other one throwing
// if called, so that a test states which parts of the replication layer it relies on.
import type { ReplicationGateway } from '../../src/server/scm-service.js';

export function gatewayWith(parts: Partial<ReplicationGateway>): ReplicationGateway {
  const unused = (): never => {
    throw new Error('not used by this test');
  };
  return {
    ensureLeader: unused,
    submit: unused,
    readBarrier: unused,
    now: () => 1_700_000_000_000,
    roles: unused,
    ownRole: unused,
    clusterInfo: unused,
    transferLeadership: unused,
    compareConsistency: unused,
    consistencyHash: unused,
    addScm: unused,
    removeScm: unused,
    ...parts,
  };
}
