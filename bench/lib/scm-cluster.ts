// Our 3-node cluster for the benchmark: the integration tests' harness (test/integration/harness.ts:
// separate `scm start` processes on loopback, one shared ozone-site.xml as `scm cluster` writes it,
// the default durable configuration), bootstrapped as an operator would, with three datanodes
// registered and one RATIS/THREE pipeline open so AllocateContainer can succeed.
import { TestCluster } from '../../test/integration/harness.js';
import { LOCAL_SERVICE_ID } from '../../src/cli/local-cluster.js';
import { httpGet } from './prom.js';
import { killOnExit, removeOnExit } from './cleanup.js';
import type { MemberRef } from './members.js';
import type { LoadTarget } from '../loadgen.js';

export class BenchScmCluster {
  private constructor(readonly harness: TestCluster) {}

  /**
   * A configured cluster whose nodes are neither initialised nor started. With `tls`, mutual TLS on
   * every port; the metrics stay on plain HTTP too (HTTP_AND_HTTPS) for the benchmark's scrapes.
   */
  static async create(options: { tls?: boolean } = {}): Promise<BenchScmCluster> {
    const tls = options.tls === true;
    const harness = await TestCluster.create(3, tls ? { 'ozone.http.policy': 'HTTP_AND_HTTPS' } : {}, { tls });
    killOnExit(() => harness.nodes.map((n) => n.process?.pid));
    removeOnExit(harness.dir);
    return new BenchScmCluster(harness);
  }

  /** init, bootstrap and start all three, register three datanodes, open a pipeline. */
  static async start(options: { tls?: boolean; nodeArgs?: string[]; nodeEnv?: Record<string, string>; compiled?: boolean } = {}): Promise<BenchScmCluster> {
    const cluster = await BenchScmCluster.create(options);
    cluster.harness.nodeArgs = options.nodeArgs ?? [];
    cluster.harness.nodeEnv = options.nodeEnv ?? {};
    cluster.harness.compiled = options.compiled === true;
    await cluster.harness.bootstrapAll();
    const admin = cluster.harness.client(cluster.harness.allClientAddresses(), 30_000);
    const uuids: string[] = [];
    for (let i = 1; i <= 3; i++) {
      const dn = await admin.registerDatanode({ uuid: `00000000-0000-4000-8000-0000000000b${i}`, hostname: `dn${i}`, ipAddress: `10.0.9.${i}`, ports: [{ name: 'RATIS', value: 9858 }] });
      uuids.push(dn.uuid);
    }
    await admin.createPipeline({ replicationType: 'RATIS', replicationFactor: 'THREE', memberIds: uuids });
    return cluster;
  }

  members(): MemberRef[] {
    return this.harness.nodes.map((n) => ({ name: n.ports.nodeId, pid: n.process?.pid, metricsPort: n.ports.http }));
  }

  /** 1-based number of the leader, asking the nodes (fails when none is known). */
  leader(): Promise<number> {
    return this.harness.leaderIndex();
  }

  /** Client addresses with the leader's first: the load generator starts at the leader. */
  async target(): Promise<LoadTarget> {
    const all = this.harness.allClientAddresses();
    const leader = this.harness.clientAddress(await this.leader());
    const tls = this.harness.tls;
    return {
      kind: 'scm',
      addresses: [leader, ...all.filter((a) => a !== leader)],
      ...(tls !== undefined ? { tls: { caFile: tls.ca.cert, certFile: tls.admin.cert, keyFile: tls.admin.key, serviceId: LOCAL_SERVICE_ID } } : {}),
    };
  }

  /** True when node k answers /readyz with 200 (a voter that knows the leader and has applied nearly all). */
  async ready(k: number): Promise<boolean> {
    try {
      return (await httpGet('127.0.0.1', this.harness.node(k).ports.http, '/readyz', 1_000)).status === 200;
    } catch {
      return false;
    }
  }

  /** /status of node k (role, term, indexes), or undefined when it does not answer. */
  async status(k: number): Promise<{ role: string; leaderId: string | null; indexes: { commit: number; applied: number; lastLog: number } } | undefined> {
    try {
      const res = await httpGet('127.0.0.1', this.harness.node(k).ports.http, '/status', 1_000);
      return res.status === 200 ? JSON.parse(res.body) : undefined;
    } catch {
      return undefined;
    }
  }

  destroy(): Promise<void> {
    return this.harness.destroy();
  }
}
