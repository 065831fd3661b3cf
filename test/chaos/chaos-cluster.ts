// The real processes of a chaos run: the integration tests' TestCluster (one ozone-site.xml, `scm
// start` per node through tsx, port blocks shared across test processes), plus what faults need:
// each node as its own uid (so iptables can tell them apart), pausing and resuming, restarting, and
// a record of every exit the harness did not cause.
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync } from 'node:fs';
import { dirname } from 'node:path';
import { TestCluster, type TestNode } from '../integration/harness.js';
import type { ScmClient } from '../../src/client/scm-client.js';
import type { CertificateFiles } from '../../src/cli/local-certificates.js';
import type { ScmNodeRole } from '../../src/api/scm-api.js';
import { initNode } from '../../src/server/node-setup.js';
import { bootstrapFromRunningScms } from '../../src/cli/bootstrap.js';
import { onTerminate } from './cleanup.js';
import type { PartitionNode } from './netfilter.js';
import type { NodeExit } from './post-heal.js';

export interface ChaosClusterOptions {
  readonly nodes: number;
  /** Extra ozone-site.xml properties. */
  readonly config: Record<string, string>;
  /** Run node k as its own uid (needs root); required for partitions. */
  readonly separateUids: boolean;
  /** Mutual TLS on every port, with the integration tests' local certificates. */
  readonly tls: boolean;
  /** ms since the run started, for exit times. */
  readonly clock: () => number;
}

export class ChaosCluster {
  readonly unexpectedExits: NodeExit[] = [];
  private readonly expectingExit = new Set<number>();
  private readonly paused = new Set<number>();
  private readonly admin: ScmClient;
  private readonly unregister: () => void;

  private constructor(
    readonly cluster: TestCluster,
    private readonly options: ChaosClusterOptions,
  ) {
    this.admin = cluster.client(cluster.allClientAddresses(), 5_000);
    // Ctrl-C or a runner's timeout must not leave nodes running (paused ones included).
    this.unregister = onTerminate(() => {
      for (const node of cluster.nodes) {
        try {
          if (node.process?.pid !== undefined) process.kill(node.process.pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
    });
  }

  /** As TestCluster.bootstrapAll, with every node as its own uid: init and start scm1, then bootstrap and start the others. */
  async bootstrapAll(): Promise<void> {
    const c = this.cluster;
    await initNode(c.config(1));
    this.start(1);
    await c.waitFor('scm1 to lead', 60_000, async () => (await this.admin.getClusterInfo()).leaderId !== '');
    for (let k = 2; k <= this.size; k++) {
      await bootstrapFromRunningScms(c.config(k), 30_000);
      this.start(k);
    }
    await c.waitForVoters(this.size);
  }

  static async create(options: ChaosClusterOptions): Promise<ChaosCluster> {
    const cluster = await TestCluster.create(options.nodes, options.config, { tls: options.tls });
    // Nodes running as other uids must read the shared ozone-site.xml in the run's directory, and
    // under TLS the CA's and their own certificate and key (each key stays readable by its node only).
    const chaos = new ChaosCluster(cluster, options);
    if (options.separateUids) {
      chmodSync(cluster.dir, 0o755);
      if (cluster.tls !== undefined) {
        chmodSync(dirname(cluster.tls.ca.cert), 0o755);
        for (const k of chaos.members) {
          const { uid, gid } = chaos.identity(k);
          chownSync((cluster.tls.nodes.get(chaos.name(k)) as CertificateFiles).key, uid, gid);
        }
      }
    }
    return chaos;
  }

  get size(): number {
    return this.cluster.nodes.length;
  }

  get members(): number[] {
    return this.cluster.nodes.map((_, i) => i + 1);
  }

  name(k: number): string {
    return this.cluster.node(k).ports.nodeId;
  }

  /** Unique per port block, so concurrent runs (each holds its own block) never share a uid. */
  identity(k: number): { uid: number; gid: number } {
    const id = 50_000 + Math.floor(this.cluster.basePort / 100) * 10 + k;
    return { uid: id, gid: id };
  }

  partitionNode(k: number): PartitionNode {
    const p = this.cluster.node(k).ports;
    return { name: p.nodeId, uid: this.identity(k).uid, ports: [p.client, p.ratis, p.grpc, this.cluster.tls !== undefined ? p.https : p.http] };
  }

  /** Hands node k's directories to its uid (after init or bootstrap wrote them as root). */
  own(k: number): void {
    if (!this.options.separateUids) return;
    const { uid, gid } = this.identity(k);
    execFileSync('chown', ['-R', `${uid}:${gid}`, this.cluster.nodeDir(k)]);
  }

  isRunning(k: number): boolean {
    return this.cluster.node(k).process !== undefined;
  }

  isPaused(k: number): boolean {
    return this.paused.has(k);
  }

  /** `scm start` for node k, as its uid; an exit the harness did not ask for is recorded. */
  start(k: number, env: Record<string, string> = {}): TestNode {
    this.own(k);
    const node = this.cluster.start(k, env, this.options.separateUids ? this.identity(k) : undefined);
    const child = node.process;
    child?.on('exit', (code, signal) => {
      if (this.expectingExit.delete(k)) return;
      if (node.process === child) node.process = undefined;
      this.unexpectedExits.push({ node: this.name(k), code, signal, at: this.options.clock(), tail: this.cluster.output(k).split('\n').slice(-20).join('\n') });
    });
    return node;
  }

  /** Stops node k with a signal and waits for its exit (a paused node is killed as it is). */
  async kill(k: number, signal: NodeJS.Signals): Promise<number | null> {
    if (!this.isRunning(k)) return null;
    this.expectingExit.add(k);
    if (signal !== 'SIGKILL' && this.paused.has(k)) this.resume(k);
    this.paused.delete(k);
    return this.cluster.kill(k, signal);
  }

  /** SIGTERMs every running node, leader last (TestCluster.stopAllLeaderLast); these exits are expected. */
  async stopAllLeaderLast(): Promise<Map<number, number | null>> {
    for (const k of this.members) if (this.isRunning(k)) this.expectingExit.add(k);
    return this.cluster.stopAllLeaderLast();
  }

  /** Marks an exit node k will cause itself (a failpoint) as expected. */
  expectExit(k: number): void {
    this.expectingExit.add(k);
  }

  pause(k: number): void {
    const pid = this.cluster.node(k).process?.pid;
    if (pid === undefined) return;
    process.kill(pid, 'SIGSTOP');
    this.paused.add(k);
  }

  resume(k: number): void {
    const pid = this.cluster.node(k).process?.pid;
    this.paused.delete(k);
    if (pid !== undefined) process.kill(pid, 'SIGCONT');
  }

  /** Every member's view as the first node that answers sees it. */
  roles(): Promise<readonly ScmNodeRole[]> {
    return this.admin.getScmRoles();
  }

  /** The leader's node number, or undefined when none is known right now. */
  async leader(): Promise<number | undefined> {
    try {
      const info = await this.admin.getClusterInfo();
      const k = this.cluster.nodes.findIndex((n) => n.ports.nodeId === info.leaderId);
      return k < 0 ? undefined : k + 1;
    } catch {
      return undefined;
    }
  }

  /** A client that talks to node k only (for per-node reads). */
  clientOf(k: number, deadlineMs: number): ScmClient {
    return this.cluster.client([this.cluster.clientAddress(k)], deadlineMs);
  }

  client(deadlineMs: number, attemptTimeoutMs: number, clientId: string): ScmClient {
    const channel = this.cluster.channelAs();
    return this.cluster.clientWith({ addresses: this.cluster.allClientAddresses(), deadlineMs, attemptTimeoutMs, clientId, ...(channel !== undefined ? { channel } : {}) });
  }

  async destroy(): Promise<void> {
    for (const k of [...this.paused]) this.resume(k);
    for (const k of this.members) this.expectingExit.add(k);
    await this.cluster.destroy();
    this.unregister();
  }
}
