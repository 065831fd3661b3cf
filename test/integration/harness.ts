// Real SCM processes on 127.0.0.1 for integration tests: one shared ozone-site.xml (as
// `scm cluster` writes it), `scm start` per node in a child process through tsx, logs captured
// per node so a failing test can show them. With `tls`, the certificates and keys `scm cluster
// --tls` makes and writes: clients of the harness present the administrator's certificate.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { readFileSync, existsSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { get as httpsGet } from 'node:https';
import { LOCAL_HOSTS, LOCAL_SERVICE_ID, localClusterSiteXml, localNodePorts, localTlsProperties, type LocalNodePorts } from '../../src/cli/local-cluster.js';
import { ensureLocalCertificates, type CertificateFiles, type LocalTls } from '../../src/cli/local-certificates.js';
import { TlsMaterial, type ChannelSecurity } from '../../src/server/tls.js';
import { initNode } from '../../src/server/node-setup.js';
import { bootstrapFromRunningScms } from '../../src/cli/bootstrap.js';
import { loadConfig, type ScmConfig } from '../../src/server/config.js';
import { ScmClient, type ScmClientOptions } from '../../src/client/scm-client.js';
import { ScmStateMachine } from '../../src/statemachine/index.js';
import { raftGroupDir } from '../../src/server/scm-node.js';
import { readVersionFile } from '../../src/server/version-file.js';
import { reservePortBlock, type PortBlock } from './port-block.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const MAIN = join(ROOT, 'src/cli/main.ts');
/** The compiled entry point `npm run build` writes: what the image runs. */
const COMPILED_MAIN = join(ROOT, 'dist/src/cli/main.js');

export interface TestNode {
  readonly ports: LocalNodePorts;
  process: ChildProcess | undefined;
  exited: Promise<number | null> | undefined;
  readonly logFile: string;
}

export class TestCluster {
  readonly nodes: TestNode[];
  /** Extra node options for every node started from now on (e.g. --cpu-prof, which NODE_OPTIONS refuses). */
  nodeArgs: string[] = [];
  /**
   * Extra environment for every node started from now on (e.g. glibc's MALLOC_ARENA_MAX), which
   * setting it on the test process would also give to everything else the test starts.
   */
  nodeEnv: Record<string, string> = {};
  /**
   * Start nodes from the compiled dist/ (`npm run build` first), as the image runs them, instead
   * of the sources through tsx.
   */
  compiled = false;
  private constructor(
    readonly dir: string,
    readonly siteXml: string,
    private readonly portBlock: PortBlock,
    count: number,
    /** The certificates, when the cluster runs mutual TLS. */
    readonly tls: LocalTls | undefined,
  ) {
    const basePort = portBlock.base;
    this.nodes = Array.from({ length: count }, (_, i) => {
      const ports = localNodePorts(i + 1, basePort);
      return { ports, process: undefined, exited: undefined, logFile: join(dir, `${ports.nodeId}.log`) };
    });
  }

  /** Writes the config (and with `tls` the certificates); nothing is initialised or started. */
  static async create(count: number, extra: Record<string, string> = {}, options: { tls?: boolean } = {}): Promise<TestCluster> {
    const dir = await mkdtemp(join(tmpdir(), 'scm-it-'));
    const block = await reservePortBlock(count);
    const siteXml = join(dir, 'ozone-site.xml');
    let tls: LocalTls | undefined;
    let props = extra;
    if (options.tls === true) {
      const nodeIds = Array.from({ length: count }, (_, i) => localNodePorts(i + 1, block.base).nodeId);
      tls = await ensureLocalCertificates({ dir, serviceId: LOCAL_SERVICE_ID, nodeIds, hosts: () => LOCAL_HOSTS });
      props = { ...localTlsProperties({ ca: tls.ca.cert, nodes: tls.nodes, admin: tls.admin }), ...extra };
    }
    await writeFile(siteXml, localClusterSiteXml(count, block.base, dir, props));
    return new TestCluster(dir, siteXml, block, count, tls);
  }

  private readonly materials = new Map<string, TlsMaterial>();

  /**
   * How a client presenting `files` (a certificate of the cluster CA) reaches an SCM; plaintext
   * when the cluster runs without TLS. The administrator by default.
   */
  channelAs(files?: CertificateFiles): ((address: string) => ChannelSecurity) | undefined {
    if (this.tls === undefined) return undefined;
    const identity = files ?? this.tls.admin;
    let material = this.materials.get(identity.cert);
    if (material === undefined) {
      material = TlsMaterial.load({ caFile: this.tls.ca.cert, certFile: identity.cert, keyFile: identity.key }, { kind: 'client' });
      this.materials.set(identity.cert, material);
    }
    const loaded = material;
    return (address) => loaded.channel(address, { serviceId: LOCAL_SERVICE_ID });
  }

  /** GET on node k's metrics endpoint (HTTPS with the cluster CA when the cluster runs TLS). */
  async httpGet(k: number, path: string): Promise<string> {
    const ports = this.node(k).ports;
    if (this.tls === undefined) return (await fetch(`http://127.0.0.1:${ports.http}${path}`)).text();
    const ca = readFileSync(this.tls.ca.cert);
    return new Promise((resolve, reject) => {
      httpsGet({ host: '127.0.0.1', port: ports.https, path, ca, servername: 'localhost' }, (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (c: Buffer) => chunks.push(c));
        response.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
        response.on('error', reject);
      }).on('error', reject);
    });
  }

  /** A metric's value on node k (the first series whose name and labels start with `prefix`). */
  async metric(k: number, prefix: string): Promise<number> {
    const line = (await this.httpGet(k, '/prom')).split('\n').find((l) => l.startsWith(prefix));
    return Number(line?.split(' ').pop() ?? Number.NaN);
  }

  get basePort(): number {
    return this.portBlock.base;
  }

  config(k: number): ScmConfig {
    return loadConfig({ siteXmlPath: this.siteXml, env: {}, overrides: { 'ozone.scm.node.id': this.node(k).ports.nodeId } });
  }

  node(k: number): TestNode {
    const node = this.nodes[k - 1];
    if (node === undefined) throw new Error(`no node ${k}`);
    return node;
  }

  clientAddress(k: number): string {
    return `127.0.0.1:${this.node(k).ports.client}`;
  }

  allClientAddresses(): string[] {
    return this.nodes.map((n) => `127.0.0.1:${n.ports.client}`);
  }

  /** Node k's directories (metadata and Raft storage), as localClusterSiteXml lays them out. */
  nodeDir(k: number): string {
    return join(this.dir, this.node(k).ports.nodeId);
  }

  /**
   * Spawns `scm start` for node k (1-based); output goes to its log file. With `identity` the node
   * runs as that uid/gid (the chaos harness tells nodes apart that way); its directories must be
   * its own by then.
   */
  start(k: number, env: Record<string, string> = {}, identity?: { readonly uid: number; readonly gid: number }): TestNode {
    const node = this.node(k);
    if (this.compiled && !existsSync(COMPILED_MAIN)) throw new Error(`${COMPILED_MAIN} is missing: run \`npm run build\` first`);
    const entry = this.compiled ? [COMPILED_MAIN] : ['--import', 'tsx', MAIN];
    const child = spawn(process.execPath, [...this.nodeArgs, ...entry, 'start', '--config', this.siteXml, '--node-id', node.ports.nodeId], {
      cwd: ROOT,
      env: { ...process.env, SCM_LOG_LEVEL: 'info', ...(identity !== undefined ? { HOME: this.nodeDir(k) } : {}), ...this.nodeEnv, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
      ...(identity !== undefined ? { uid: identity.uid, gid: identity.gid } : {}),
    });
    const chunks: Buffer[] = [];
    const append = (b: Buffer): void => {
      chunks.push(b);
    };
    child.stdout.on('data', append);
    child.stderr.on('data', append);
    node.process = child;
    node.exited = new Promise((resolve) =>
      child.on('exit', (code) => {
        void writeFile(node.logFile, Buffer.concat(chunks), { flag: 'a' }).finally(() => resolve(code));
      }),
    );
    (node as { output?: () => string }).output = () => Buffer.concat(chunks).toString('utf8');
    return node;
  }

  output(k: number): string {
    const node = this.node(k) as TestNode & { output?: () => string };
    const live = node.output?.() ?? '';
    return live !== '' ? live : existsSync(node.logFile) ? readFileSync(node.logFile, 'utf8') : '';
  }

  /** init node 1, start it, wait for it to lead; bootstrap + start the others; wait for all voters. */
  async bootstrapAll(): Promise<void> {
    await initNode(this.config(1));
    this.start(1);
    await this.waitFor('node 1 to lead', 60_000, async () => (await this.client([this.clientAddress(1)]).getClusterInfo()).leaderId !== '');
    for (let k = 2; k <= this.nodes.length; k++) {
      await bootstrapFromRunningScms(this.config(k), 30_000);
      this.start(k);
    }
    await this.waitForVoters(this.nodes.length);
  }

  async waitForVoters(count: number, timeoutMs = 90_000): Promise<void> {
    await this.waitFor(`${count} voting members`, timeoutMs, async () => {
      const roles = await this.client(this.allClientAddresses()).getScmRoles();
      return roles.filter((r) => r.role === 'LEADER' || r.role === 'FOLLOWER').length === count && roles.some((r) => r.role === 'LEADER');
    });
  }

  private clients: ScmClient[] = [];

  client(addresses: string[], deadlineMs = 5_000, identity?: CertificateFiles): ScmClient {
    const channel = this.channelAs(identity);
    return this.clientWith({ addresses, deadlineMs, ...(channel !== undefined ? { channel } : {}) });
  }

  /** A client with any options, closed with the cluster. */
  clientWith(options: ScmClientOptions): ScmClient {
    const c = new ScmClient(options);
    this.clients.push(c);
    return c;
  }

  async waitFor(what: string, timeoutMs: number, check: () => Promise<boolean>): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let lastError = '';
    while (Date.now() < deadline) {
      try {
        if (await check()) return;
      } catch (err) {
        lastError = (err as Error).message;
      }
      await sleep(200);
    }
    throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastError !== '' ? ` (last error: ${lastError})` : ''}\n${this.tails()}`);
  }

  /** Last lines of every node's output, for failure messages. */
  tails(lines = 15): string {
    return this.nodes
      .map((_, i) => `--- scm${i + 1} ---\n${this.output(i + 1).split('\n').slice(-lines).join('\n')}`)
      .join('\n');
  }

  async kill(k: number, signal: NodeJS.Signals = 'SIGKILL'): Promise<number | null> {
    const node = this.node(k);
    if (node.process === undefined || node.exited === undefined) return null;
    node.process.kill(signal);
    const code = await node.exited;
    node.process = undefined;
    return code;
  }

  /**
   * SIGTERMs every running node, followers first and the leader last, and returns the exit codes by
   * node number. Stopping the leader first would let the others elect a new leader whose first
   * entry only they apply, and their scm.db would then rightly differ from the stopped one's.
   */
  async stopAllLeaderLast(): Promise<Map<number, number | null>> {
    const leader = await this.leaderIndex();
    const running = this.nodes.map((_, i) => i + 1).filter((k) => this.node(k).process !== undefined);
    const codes = new Map<number, number | null>();
    for (const k of [...running.filter((k) => k !== leader), leader]) {
      if (running.includes(k)) codes.set(k, await this.kill(k, 'SIGTERM'));
    }
    return codes;
  }

  private readonly ownClients = new Map<number, ScmClient>();

  /** The 1-based number of the node with id `nodeId`. */
  indexOf(nodeId: string): number {
    const k = this.nodes.findIndex((n) => n.ports.nodeId === nodeId);
    if (k < 0) throw new Error(`no node ${nodeId} in this cluster`);
    return k + 1;
  }

  /**
   * Node k's applied index in its own words (GetScmRoles with selfOnly, on its own client port).
   * Not the leader's view: for a member it cannot reach but heard from within an election timeout,
   * the leader reports its own match index (a process killed a moment ago shows as caught up).
   */
  async ownAppliedIndex(k: number): Promise<number | undefined> {
    let client = this.ownClients.get(k);
    if (client === undefined) {
      client = this.client([this.clientAddress(k)]);
      this.ownClients.set(k, client);
    }
    return (await client.getScmRoles({ selfOnly: true }))[0]?.appliedIndex;
  }

  /** Whether nodes `ks` have each applied the same index, every one asked itself. */
  async appliedAlike(ks: readonly number[]): Promise<boolean> {
    const applied = await Promise.all(ks.map((k) => this.ownAppliedIndex(k)));
    return applied.every((a) => a !== undefined && a === applied[0]);
  }

  async leaderIndex(): Promise<number> {
    const info = await this.client(this.allClientAddresses()).getClusterInfo();
    const k = this.nodes.findIndex((n) => n.ports.nodeId === info.leaderId);
    if (k < 0) throw new Error(`no leader known (${JSON.stringify(info)})`);
    return k + 1;
  }

  /** The first index in node k's Raft log, from its segment file names (it rises as the node purges). */
  firstLogIndex(k: number): number {
    const config = this.config(k);
    const dir = join(raftGroupDir(config, readVersionFile(config.dbDir).clusterId), 'current');
    const starts = readdirSync(dir)
      .map((name) => /^log_(?:inprogress_)?(\d+)/.exec(name)?.[1])
      .filter((s): s is string => s !== undefined)
      .map(Number);
    return Math.min(...starts);
  }

  /** Digest of node k's scm.db (the node must be stopped). */
  async digest(k: number): Promise<string> {
    const sm = await ScmStateMachine.open(join(this.config(k).dbDir, 'scm.db'));
    try {
      return await sm.digest();
    } finally {
      await sm.close();
    }
  }

  async destroy(): Promise<void> {
    for (const c of this.clients) c.close();
    for (const m of this.materials.values()) m.close();
    await Promise.all(this.nodes.map((_, i) => this.kill(i + 1, 'SIGKILL')));
    this.portBlock.release();
    if (process.env['KEEP_TEST_DIRS'] === undefined) await rm(this.dir, { recursive: true, force: true });
  }
}

/**
 * Runs `body` on a fresh cluster of `count` nodes (`extra`: site properties for every node), always
 * destroyed after; a failure's message gets each node's last log lines, which say why.
 */
export async function withCluster(count: number, body: (cluster: TestCluster) => Promise<void>, extra: Record<string, string> = {}): Promise<void> {
  const cluster = await TestCluster.create(count, extra);
  try {
    await body(cluster);
  } catch (err) {
    (err as Error).message += `\n${cluster.tails(25)}`;
    throw err;
  } finally {
    await cluster.destroy();
  }
}
