// `scm cluster`: a local quorum of separate SCM processes on 127.0.0.1, started the way an
// operator would (init the first node, start it, then bootstrap and start each further one), with
// logs in <dir>/scmN/scm.log. Ctrl-C or SIGTERM stops them all.
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ScmClient } from '../client/scm-client.js';
import { loadConfig, type ScmConfig } from '../server/config.js';
import { initNode } from '../server/node-setup.js';
import { bootstrapFromRunningScms } from './bootstrap.js';
import type { CliIo } from './command.js';

export interface LocalClusterOptions {
  readonly nodes: number;
  readonly basePort: number;
  readonly dir: string;
  readonly io: CliIo;
}

export interface LocalNodePorts {
  readonly nodeId: string;
  readonly client: number;
  readonly ratis: number;
  readonly grpc: number;
  readonly http: number;
}

/** Node k (1-based) uses the base ports plus 100·(k-1): Ozone's defaults for node 1. */
export function localNodePorts(k: number, basePort: number): LocalNodePorts {
  const client = basePort + 100 * (k - 1);
  return { nodeId: `scm${k}`, client, ratis: client + 34, grpc: client + 35, http: client + 16 };
}

function xmlEscape(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** One ozone-site.xml for the whole local cluster, with Ozone's per-node suffixed keys. */
export function localClusterSiteXml(nodes: number, basePort: number, dir: string, extra: Record<string, string> = {}): string {
  const service = 'scmservice';
  const props: Array<[string, string]> = [
    ['ozone.scm.service.ids', service],
    [`ozone.scm.nodes.${service}`, Array.from({ length: nodes }, (_, i) => `scm${i + 1}`).join(',')],
    ['ozone.scm.primordial.node.id', 'scm1'],
    // Local processes on one machine: elect within about a second instead of Ozone's 5 s.
    ['ozone.scm.ha.ratis.leader.election.timeout', '1s'],
    // A local cluster stays on loopback: the client, Ratis and InterSCM servers bind this host, the
    // HTTP server the host of its http-address below (daemon.ts states the rule).
    ['ozone.scm.client.bind.host', '127.0.0.1'],
  ];
  for (let k = 1; k <= nodes; k++) {
    const p = localNodePorts(k, basePort);
    const suffix = `${service}.${p.nodeId}`;
    props.push(
      [`ozone.scm.address.${suffix}`, '127.0.0.1'],
      [`ozone.scm.client.port.${suffix}`, String(p.client)],
      [`ozone.scm.ratis.port.${suffix}`, String(p.ratis)],
      [`ozone.scm.grpc.port.${suffix}`, String(p.grpc)],
      [`ozone.scm.http-address.${suffix}`, `127.0.0.1:${p.http}`],
      [`ozone.scm.db.dirs.${suffix}`, join(dir, p.nodeId, 'metadata')],
      [`ozone.scm.ratis.storage.dir.${suffix}`, join(dir, p.nodeId, 'ratis')],
    );
  }
  for (const [k, v] of Object.entries(extra)) props.push([k, v]);
  const body = props.map(([name, value]) => `  <property>\n    <name>${xmlEscape(name)}</name>\n    <value>${xmlEscape(value)}</value>\n  </property>`).join('\n');
  return `<?xml version="1.0"?>\n<!-- Written by \`scm cluster\` -->\n<configuration>\n${body}\n</configuration>\n`;
}

/** How to run this same CLI in a child process (built, through bin/scm.js, or through tsx). */
function selfCommand(): { command: string; args: string[] } {
  const script = process.argv[1];
  if (script === undefined) throw new Error('cannot tell how this CLI was started (no script path in process.argv)');
  return { command: process.execPath, args: [...process.execArgv, script] };
}

async function waitUntil(what: string, timeoutMs: number, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return;
    await sleep(200);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

export async function runLocalCluster(options: LocalClusterOptions): Promise<number> {
  const { nodes, basePort, dir, io } = options;
  mkdirSync(dir, { recursive: true });
  const siteXml = join(dir, 'ozone-site.xml');
  writeFileSync(siteXml, localClusterSiteXml(nodes, basePort, dir));
  const configOf = (nodeId: string): ScmConfig => loadConfig({ siteXmlPath: siteXml, env: io.env, overrides: { 'ozone.scm.node.id': nodeId } });
  const children = new Map<string, ChildProcess>();
  let stopping = false;
  const { command, args } = selfCommand();

  const startNode = (nodeId: string): void => {
    const nodeDir = join(dir, nodeId);
    mkdirSync(nodeDir, { recursive: true });
    const logFile = join(nodeDir, 'scm.log');
    const out = createWriteStream(logFile, { flags: 'a' });
    const child = spawn(command, [...args, 'start', '--config', siteXml, '--node-id', nodeId], {
      env: io.env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout?.pipe(out);
    child.stderr?.pipe(out);
    child.on('exit', (code, signal) => {
      children.delete(nodeId);
      if (!stopping) io.stderr(`${nodeId} exited (${signal ?? `code ${code}`}); see ${logFile}\n`);
    });
    children.set(nodeId, child);
  };

  const stopAll = async (): Promise<void> => {
    stopping = true;
    const exits = [...children.values()].map(
      (child) =>
        new Promise<void>((resolve) => {
          if (child.exitCode !== null || child.signalCode !== null) return resolve();
          const kill = setTimeout(() => child.kill('SIGKILL'), 10_000);
          child.once('exit', () => {
            clearTimeout(kill);
            resolve();
          });
          child.kill('SIGTERM');
        }),
    );
    await Promise.all(exits);
  };

  const signalled = new Promise<void>((resolve) => {
    process.once('SIGINT', () => resolve());
    process.once('SIGTERM', () => resolve());
  });

  try {
    const first = localNodePorts(1, basePort);
    const init = await initNode(configOf(first.nodeId));
    io.stdout(`${init.created ? 'initialized' : 'found'} clusterID ${init.clusterId} in ${dir}\n`);
    startNode(first.nodeId);
    const probe = new ScmClient({ addresses: [`127.0.0.1:${first.client}`], deadlineMs: 2_000 });
    try {
      await waitUntil(`${first.nodeId} to elect a leader`, 60_000, async () => (await probe.getClusterInfo()).leaderId !== '');
    } finally {
      probe.close();
    }
    for (let k = 2; k <= nodes; k++) {
      const p = localNodePorts(k, basePort);
      await bootstrapFromRunningScms(configOf(p.nodeId), 60_000);
      startNode(p.nodeId);
    }
    const all = Array.from({ length: nodes }, (_, i) => `127.0.0.1:${localNodePorts(i + 1, basePort).client}`);
    const client = new ScmClient({ addresses: all, deadlineMs: 2_000 });
    try {
      await waitUntil(`all ${nodes} SCMs to join the group as voters`, 120_000, async () => {
        const roles = await client.getScmRoles();
        return roles.length === nodes && roles.every((r) => r.role === 'LEADER' || r.role === 'FOLLOWER');
      });
    } finally {
      client.close();
    }
    io.stdout(`SCM quorum of ${nodes} running (data and logs under ${dir}); Ctrl-C stops it\n`);
    io.stdout('node   client  ratis  grpc   http\n');
    for (let k = 1; k <= nodes; k++) {
      const p = localNodePorts(k, basePort);
      io.stdout(`${p.nodeId.padEnd(6)} ${String(p.client).padEnd(7)} ${String(p.ratis).padEnd(6)} ${String(p.grpc).padEnd(6)} ${p.http}\n`);
    }
    io.stdout(`try: scm admin scm roles --scm ${all.join(',')}\n`);
    await signalled;
    io.stdout('stopping the local SCM quorum…\n');
  } finally {
    await stopAll();
  }
  return 0;
}
