// `scm cluster` (what `npm start` runs): a local quorum of separate SCM processes on 127.0.0.1, with
// data and logs under one directory (<dir>/scmN/, logs in <dir>/scmN/scm.log).
//
// Starting. Nodes that already have data (a VERSION) start all at once: a group that has run
// needs a quorum of its voters before any of them can lead, so starting them one by one would wait
// forever on the first. On a fresh directory that is just scm1, which `scm init` creates. Once a
// leader of this cluster answers, every node without data is bootstrapped and started, as an
// operator would, and the command waits until all are voters. Before anything starts: no node's
// data may be in use by another process (in_use.lock) and no port may be taken, so a second `scm
// cluster` says why it cannot run instead of starting nodes that fail one by one.
//
// TLS (--tls): a throwaway CA and certificates under <dir>/tls/ (kept for the next run), and
// ozone-site.xml switched to mutual TLS with `admin` as the one administrator, whose identity the
// admin commands reading that file present; <dir>/tls/client.crt is a certificate of the same CA
// that is not an administrator, for trying authorization.
//
// Stopping. Every way out stops the node processes: Ctrl-C or SIGTERM at any time (also while
// starting; a second one kills them), a failure while starting, and this process being killed
// (the nodes watch their stdin, a pipe from here). A node that exits on its own is reported on the
// terminal with the reason from its log; when none is left, `scm cluster` exits 1.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ScmClient } from '../client/scm-client.js';
import { loadConfig, type ScmConfig } from '../server/config.js';
import { assertNodeNotRunning } from '../server/node-in-use.js';
import { initNode } from '../server/node-setup.js';
import { onStopSignals } from '../server/stop-signals.js';
import { readVersionFileIfExists } from '../server/version-file.js';
import { bootstrapFromRunningScms } from './bootstrap.js';
import type { CliIo } from './command.js';
import { LOCAL_HOSTS, LOCAL_SERVICE_ID, localClusterSiteXml, localNodePorts, localTlsProperties, type LocalNodePorts } from './local-cluster.js';
import { ensureLocalCertificates, type LocalTls } from './local-certificates.js';
import { clientChannel, type ChannelFactory } from '../server/client-tls.js';
import { KEY } from '../server/config.js';
import { LocalProcesses, type NodeExit, type SelfCommand } from './local-processes.js';
import { assertPortsFree } from './port-check.js';

export interface LocalClusterOptions {
  readonly nodes: number;
  readonly basePort: number;
  readonly dir: string;
  readonly io: CliIo;
  /** Mutual TLS with throwaway certificates under <dir>/tls/. */
  readonly tls?: boolean;
}

const LOOPBACK = '127.0.0.1';
const LEADER_TIMEOUT_MS = 60_000;
const BOOTSTRAP_TIMEOUT_MS = 60_000;
const VOTERS_TIMEOUT_MS = 120_000;

/** How to run this same CLI in a child process (through bin/scm.js, or tsx in tests). */
function selfCommand(): SelfCommand {
  const script = process.argv[1];
  if (script === undefined) throw new Error('cannot tell how this CLI was started (no script path in process.argv)');
  return { command: process.execPath, args: [...process.execArgv, script] };
}

function describeExit(exit: NodeExit): string {
  return `${exit.nodeId} exited (${exit.how})${exit.reason !== undefined ? `: ${exit.reason}` : ''}; see ${exit.logFile}`;
}

/** An SCM of another cluster answers on our ports: waiting longer cannot help. */
class NotOurCluster extends Error {
  override readonly name = 'NotOurCluster';
}

interface Node {
  readonly ports: LocalNodePorts;
  readonly config: ScmConfig;
  readonly logFile: string;
}

class Startup {
  /** The first node that exited while the quorum was starting, which ends the start. */
  private failure: NodeExit | undefined;

  constructor(
    private readonly nodes: readonly Node[],
    private readonly processes: LocalProcesses,
    private readonly siteXml: string,
    private readonly io: CliIo,
    private readonly signal: AbortSignal,
    private readonly channel: ChannelFactory | undefined,
  ) {
    processes.onExit((exit) => {
      if (!exit.requested) this.failure ??= exit;
    });
  }

  private start(node: Node): void {
    this.processes.start(node.ports.nodeId, ['--config', this.siteXml, '--node-id', node.ports.nodeId], node.logFile);
  }

  /** Polls `check` until it holds; fails at once when a node exits or a stop is requested. */
  private async waitUntil(what: string, timeoutMs: number, check: () => Promise<boolean>): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      this.signal.throwIfAborted();
      if (this.failure !== undefined) throw new Error(`${describeExit(this.failure)} while the quorum was starting`);
      const done = await check().catch((err: unknown) => {
        if (err instanceof NotOurCluster) throw err;
        return false; // not answering yet
      });
      if (done) return;
      if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}; the nodes' logs are ${this.nodes.map((n) => n.logFile).join(', ')}`);
      await sleep(200, undefined, { signal: this.signal });
    }
  }

  /** A client of the running nodes, closed when the wait ends or a stop is requested. */
  private async withClient<T>(addresses: string[], use: (client: ScmClient) => Promise<T>): Promise<T> {
    const client = new ScmClient({ addresses, deadlineMs: 2_000, ...(this.channel !== undefined ? { channel: this.channel } : {}) });
    const close = (): void => client.close();
    this.signal.addEventListener('abort', close, { once: true });
    try {
      return await use(client);
    } finally {
      this.signal.removeEventListener('abort', close);
      client.close();
    }
  }

  async run(clusterId: string): Promise<void> {
    const withData = this.nodes.filter((n) => readVersionFileIfExists(n.config.dbDir) !== null);
    const withoutData = this.nodes.filter((n) => !withData.includes(n));
    this.io.stdout(`starting ${withData.map((n) => n.ports.nodeId).join(', ')}${withData.length > 1 ? ' together (a quorum of them is needed to elect a leader)' : ''}…\n`);
    for (const node of withData) this.start(node);
    const addresses = withData.map((n) => `${LOOPBACK}:${n.ports.client}`);
    await this.withClient(addresses, (client) =>
      this.waitUntil(`a leader among ${withData.map((n) => n.ports.nodeId).join(', ')}`, LEADER_TIMEOUT_MS, async () => {
        const info = await client.getClusterInfo();
        if (info.clusterId !== clusterId) throw new NotOurCluster(`the SCM at ${client.currentAddress} belongs to cluster ${info.clusterId}, not to ${clusterId}`);
        return info.leaderId !== '';
      }),
    );
    for (const node of withoutData) {
      this.io.stdout(`bootstrapping ${node.ports.nodeId} into the running quorum…\n`);
      await bootstrapFromRunningScms(node.config, BOOTSTRAP_TIMEOUT_MS, this.signal);
      this.start(node);
    }
    const all = this.nodes.map((n) => `${LOOPBACK}:${n.ports.client}`);
    await this.withClient(all, (client) =>
      this.waitUntil(`all ${this.nodes.length} SCMs to be voters`, VOTERS_TIMEOUT_MS, async () => {
        const roles = await client.getScmRoles();
        return roles.length === this.nodes.length && roles.every((r) => r.role === 'LEADER' || r.role === 'FOLLOWER');
      }),
    );
  }
}

/** Refuses to start next to a running cluster, naming what is taken. */
async function checkNothingRunning(nodes: readonly Node[], dir: string, tls: boolean): Promise<void> {
  for (const node of nodes) {
    try {
      assertNodeNotRunning(node.config);
    } catch (err) {
      throw new Error(`${node.ports.nodeId}'s data in ${dir} is in use (${(err as Error).message}): is \`scm cluster\` already running on ${dir}? Stop it first`, { cause: err });
    }
  }
  await assertPortsFree(
    nodes.flatMap(({ ports: p }) => [
      { port: p.client, what: `${p.nodeId} client` },
      { port: p.ratis, what: `${p.nodeId} Ratis` },
      { port: p.grpc, what: `${p.nodeId} InterSCM gRPC` },
      tls ? { port: p.https, what: `${p.nodeId} HTTPS` } : { port: p.http, what: `${p.nodeId} HTTP` },
    ]),
    LOOPBACK,
  );
}

export async function runLocalCluster(options: LocalClusterOptions): Promise<number> {
  const { nodes: count, basePort, dir, io } = options;
  const tlsOn = options.tls === true;
  mkdirSync(dir, { recursive: true });
  const siteXml = join(dir, 'ozone-site.xml');
  const nodeIds = Array.from({ length: count }, (_, i) => localNodePorts(i + 1, basePort).nodeId);
  let tls: LocalTls | undefined;
  if (tlsOn) {
    tls = await ensureLocalCertificates({ dir, serviceId: LOCAL_SERVICE_ID, nodeIds, hosts: () => LOCAL_HOSTS });
    io.stdout(`${tls.created ? 'made' : 'found'} TLS certificates in ${tls.dir} (CA ca.crt; one per node; admin.crt, the administrator; client.crt, not one)\n`);
  }
  writeFileSync(siteXml, localClusterSiteXml(count, basePort, dir, tls !== undefined ? localTlsProperties({ ca: tls.ca.cert, nodes: tls.nodes, admin: tls.admin }) : {}));
  const nodes: Node[] = Array.from({ length: count }, (_, i) => {
    const ports = localNodePorts(i + 1, basePort);
    const nodeDir = join(dir, ports.nodeId);
    mkdirSync(nodeDir, { recursive: true });
    return {
      ports,
      config: loadConfig({ siteXmlPath: siteXml, env: io.env, overrides: { 'ozone.scm.node.id': ports.nodeId } }),
      logFile: join(nodeDir, 'scm.log'),
    };
  });
  const first = nodes[0];
  if (first === undefined) throw new Error('internal: a local cluster has at least one node');
  await checkNothingRunning(nodes, dir, tlsOn);
  const channel = clientChannel(first.config.security, first.config.serviceId);

  const processes = new LocalProcesses(selfCommand(), io.env);
  const stop = new AbortController();
  const disposeSignals = onStopSignals({
    stop: (signal) => {
      io.stdout(`${signal}: stopping the local SCM quorum…\n`);
      stop.abort(signal);
    },
    giveUp: (signal) => {
      io.stderr(`${signal} again: killing the SCM processes\n`);
      processes.killAll();
    },
  });
  let running = false;
  processes.onExit((exit) => {
    if (running && !exit.requested) io.stderr(`${describeExit(exit)}\n`);
  });
  try {
    const init = await initNode(first.config);
    io.stdout(`${init.created ? 'initialized' : 'found'} clusterID ${init.clusterId} in ${dir}\n`);
    await new Startup(nodes, processes, siteXml, io, stop.signal, channel).run(init.clusterId);
    running = true;
    io.stdout(`SCM quorum of ${count} running${tls !== undefined ? ' with mutual TLS' : ''} (data and logs under ${dir}); Ctrl-C stops it\n`);
    io.stdout(`node   client  ratis  grpc   ${tls !== undefined ? 'https' : 'http'}\n`);
    for (const { ports: p } of nodes) io.stdout(`${p.nodeId.padEnd(6)} ${String(p.client).padEnd(7)} ${String(p.ratis).padEnd(6)} ${String(p.grpc).padEnd(6)} ${tls !== undefined ? p.https : p.http}\n`);
    io.stdout(`try: scm admin scm roles --config ${siteXml}\n`);
    if (tls !== undefined) {
      io.stdout(`as a non-administrator: env OZONE-SITE.XML_${KEY.clientCertificateFile}=${tls.client.cert} OZONE-SITE.XML_${KEY.clientPrivateKeyFile}=${tls.client.key} scm admin … --config ${siteXml}\n`);
      io.stdout(`metrics: curl --cacert ${tls.ca.cert} https://localhost:${first.ports.https}/prom\n`);
    }
    const stopped = new Promise<'stopped'>((resolve) => stop.signal.addEventListener('abort', () => resolve('stopped'), { once: true }));
    const outcome = await Promise.race([stopped, processes.allExited().then(() => 'all exited' as const)]);
    if (outcome === 'all exited') {
      io.stderr(`scm cluster: every SCM process has exited; see the logs under ${dir}\n`);
      return 1;
    }
    return 0;
  } catch (err) {
    // A stop asked for while starting is not a failure; the nodes are stopped below.
    if (stop.signal.aborted) return 0;
    io.stderr(`scm cluster: ${(err as Error).message}\n`);
    return 1;
  } finally {
    running = false;
    await processes.stopAll();
    disposeSignals();
  }
}
