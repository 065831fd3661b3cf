// A 3-member etcd cluster on loopback for the comparison: the Debian `etcd-server` binary
// (/usr/bin/etcd, or $ETCD_BIN), default settings (fsync on, default snapshot count, heartbeat and
// election timeout), one data directory per member under a scratch directory on the same disk as
// our nodes' data. Ports come from the same cross-process block reservation as our test clusters.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, openSync, closeSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { localNodePorts } from '../../src/cli/local-cluster.js';
import { reservePortBlock, type PortBlock } from '../../test/integration/port-block.js';
import { killOnExit, removeOnExit } from './cleanup.js';
import type { MemberRef } from './members.js';
import { httpGet, scrape, sumOf } from './prom.js';
import type { LoadTarget } from '../loadgen.js';

export function etcdBinary(): string {
  return process.env['ETCD_BIN'] ?? '/usr/bin/etcd';
}

/** `etcd --version`'s first line, or undefined when the binary is missing. */
export function etcdVersion(): string | undefined {
  if (!existsSync(etcdBinary())) return undefined;
  try {
    return execFileSync(etcdBinary(), ['--version'], { encoding: 'utf8' }).split('\n')[0]?.trim();
  } catch {
    return undefined;
  }
}

interface EtcdMember {
  readonly name: string;
  readonly clientPort: number;
  readonly peerPort: number;
  readonly dataDir: string;
  readonly logFile: string;
  process: ChildProcess | undefined;
}

export class EtcdCluster {
  private constructor(
    readonly dir: string,
    private readonly block: PortBlock,
    readonly members: readonly EtcdMember[],
  ) {}

  static async start(): Promise<EtcdCluster> {
    if (!existsSync(etcdBinary())) {
      throw new Error(`etcd not found at ${etcdBinary()}: install the Debian package etcd-server (apt-get install etcd-server) or set ETCD_BIN`);
    }
    const dir = mkdtempSync(join(tmpdir(), 'bench-etcd-'));
    removeOnExit(dir);
    const block = await reservePortBlock(3);
    const members: EtcdMember[] = [1, 2, 3].map((k) => {
      const ports = localNodePorts(k, block.base);
      const name = `etcd${k}`;
      return { name, clientPort: ports.client, peerPort: ports.ratis, dataDir: join(dir, name), logFile: join(dir, `${name}.log`), process: undefined };
    });
    const cluster = new EtcdCluster(dir, block, members);
    killOnExit(() => members.map((m) => m.process?.pid));
    const initialCluster = members.map((m) => `${m.name}=http://127.0.0.1:${m.peerPort}`).join(',');
    for (const m of members) {
      const out = openSync(m.logFile, 'a');
      m.process = spawn(
        etcdBinary(),
        [
          '--name', m.name,
          '--data-dir', m.dataDir,
          '--listen-client-urls', `http://127.0.0.1:${m.clientPort}`,
          '--advertise-client-urls', `http://127.0.0.1:${m.clientPort}`,
          '--listen-peer-urls', `http://127.0.0.1:${m.peerPort}`,
          '--initial-advertise-peer-urls', `http://127.0.0.1:${m.peerPort}`,
          '--initial-cluster', initialCluster,
          '--initial-cluster-token', `bench-${block.base}`,
          '--initial-cluster-state', 'new',
        ],
        { stdio: ['ignore', out, out] },
      );
      closeSync(out);
    }
    try {
      await cluster.waitHealthy(60_000);
    } catch (err) {
      await cluster.destroy();
      throw err;
    }
    return cluster;
  }

  private async waitHealthy(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const healthy = await Promise.all(
        this.members.map(async (m) => {
          try {
            const res = await httpGet('127.0.0.1', m.clientPort, '/health', 1_000);
            return res.status === 200 && /"health"\s*:\s*"true"/.test(res.body);
          } catch {
            return false;
          }
        }),
      );
      if (healthy.every(Boolean)) return;
      for (const m of this.members) {
        if (m.process?.exitCode !== null && m.process?.exitCode !== undefined) throw new Error(`${m.name} exited with ${m.process.exitCode}; see ${m.logFile}`);
      }
      if (Date.now() > deadline) throw new Error(`etcd cluster not healthy after ${timeoutMs} ms; logs in ${this.dir}`);
      await sleep(200);
    }
  }

  memberRefs(): MemberRef[] {
    return this.members.map((m) => ({ name: m.name, pid: m.process?.pid, metricsPort: m.clientPort }));
  }

  /** The leader's client endpoint (etcd_server_is_leader on its /metrics). */
  async leaderEndpoint(): Promise<string> {
    for (let attempt = 0; attempt < 50; attempt++) {
      for (const m of this.members) {
        try {
          if (sumOf(await scrape('127.0.0.1', m.clientPort, '/metrics'), 'etcd_server_is_leader') === 1) return `127.0.0.1:${m.clientPort}`;
        } catch {
          // not answering: try the next
        }
      }
      await sleep(100);
    }
    throw new Error('no etcd member reports itself leader');
  }

  /** The leader's endpoint: a client of one endpoint, as ours starts at the leader. */
  async target(): Promise<LoadTarget> {
    return { kind: 'etcd', endpoint: await this.leaderEndpoint() };
  }

  async destroy(): Promise<void> {
    await Promise.all(
      this.members.map(async (m) => {
        const child = m.process;
        if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
        await exited;
        clearTimeout(timer);
      }),
    );
    this.block.release();
    if (process.env['KEEP_TEST_DIRS'] === undefined) rmSync(this.dir, { recursive: true, force: true });
  }
}
