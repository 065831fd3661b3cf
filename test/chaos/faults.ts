// The fault injectors: each step of the schedule is injected, held, healed, and then the run waits
// until the cluster has recovered (every member back, one leader, every member applied up to what
// the leader had committed when it was first seen after the heal). What happened is recorded for
// the unavailability figures, the heal bound and the report.
import { rm } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { INSTALL_FAILPOINTS, FAILPOINTS_ENV } from '../../src/snapshot/index.js';
import { bootstrapFromRunningScms } from '../../src/cli/bootstrap.js';
import type { ScmClient } from '../../src/client/scm-client.js';
import type { ChaosCluster } from './chaos-cluster.js';
import type { Netfilter } from './netfilter.js';
import type { FaultKind, FaultStep } from './schedule.js';

export interface FaultRecord {
  readonly index: number;
  readonly kind: FaultKind;
  target: string;
  /** ms since the run started. */
  readonly startedAt: number;
  healedAt: number;
  /** When the cluster was whole again; null if not within the bound. */
  recoveredAt: number | null;
  detail: string;
}

export interface FaultContext {
  readonly cluster: ChaosCluster;
  /** Undefined when partitions are not possible (then isolation falls back to SIGSTOP). */
  readonly net: Netfilter | undefined;
  readonly clock: () => number;
  readonly log: (line: string) => void;
  readonly healBoundMs: number;
}

const INSTALLED = /snapshot installed/g;
/** The follower's log line when it starts downloading a checkpoint from the leader. */
const INSTALL_STARTED = /"event":"snapshot_download_started"/g;
/** The node `scm init` creates; it cannot be bootstrapped again (remove-readd picks another). */
const PRIMORDIAL = 1;

export class FaultInjector {
  private readonly nodeClients: Map<number, ScmClient>;

  constructor(private readonly ctx: FaultContext) {
    this.nodeClients = new Map(ctx.cluster.members.map((k) => [k, ctx.cluster.clientOf(k, 2_000)]));
  }

  private get cluster(): ChaosCluster {
    return this.ctx.cluster;
  }

  private installsOf(k: number): number {
    return this.cluster.cluster.output(k).match(INSTALLED)?.length ?? 0;
  }

  private installStartsOf(k: number): number {
    return this.cluster.cluster.output(k).match(INSTALL_STARTED)?.length ?? 0;
  }

  private async leaderNow(boundMs = 30_000): Promise<number> {
    const deadline = Date.now() + boundMs;
    for (;;) {
      const leader = await this.cluster.leader();
      if (leader !== undefined) return leader;
      if (Date.now() > deadline) throw new Error(`no leader within ${boundMs / 1000} s`);
      await sleep(200);
    }
  }

  private async appliedOf(k: number): Promise<{ applied: number; commit: number }> {
    const [role] = await this.nodeClients.get(k)!.getScmRoles({ selfOnly: true });
    return { applied: role?.appliedIndex ?? 0, commit: role?.commitIndex ?? 0 };
  }

  /** Isolates node k: iptables when possible, else SIGSTOP (the leader sees the same silence). */
  private isolate(k: number): void {
    const net = this.ctx.net;
    if (net !== undefined) net.isolate(this.cluster.partitionNode(k), this.cluster.members.map((m) => this.cluster.partitionNode(m)));
    else this.cluster.pause(k);
  }

  private reconnect(k: number): void {
    if (this.ctx.net !== undefined) this.ctx.net.healAll();
    else if (this.cluster.isPaused(k)) this.cluster.resume(k);
  }

  /** Waits until the leader's log starts above `index` (it took a snapshot and purged past it). */
  private async waitPurgedPast(leader: number, index: number, boundMs: number): Promise<boolean> {
    const deadline = Date.now() + boundMs;
    while (Date.now() < deadline) {
      if (this.cluster.cluster.firstLogIndex(leader) > index) return true;
      await sleep(250);
    }
    return false;
  }

  /** Every member up, one leader, and each applied up to the leader's commit when first seen. */
  async waitRecovered(boundMs: number): Promise<number | null> {
    const deadline = Date.now() + boundMs;
    let target: number | undefined;
    while (Date.now() < deadline) {
      try {
        const roles = await Promise.all(this.cluster.members.map(async (k) => (await this.nodeClients.get(k)!.getScmRoles({ selfOnly: true }))[0]));
        const leaders = roles.filter((r) => r?.role === 'LEADER');
        if (leaders.length === 1 && roles.every((r) => r?.role === 'LEADER' || r?.role === 'FOLLOWER')) {
          target ??= leaders[0]!.commitIndex;
          if (roles.every((r) => (r?.appliedIndex ?? 0) >= target!)) return this.ctx.clock();
        }
      } catch {
        // a member that does not answer yet
      }
      await sleep(200);
    }
    return null;
  }

  async run(step: FaultStep): Promise<FaultRecord> {
    const leader = await this.leaderNow();
    const followers = this.cluster.members.filter((k) => k !== leader);
    const follower = followers[step.pick % followers.length] as number;
    const record: FaultRecord = { index: step.index, kind: step.kind, target: '', startedAt: this.ctx.clock(), healedAt: 0, recoveredAt: null, detail: '' };
    const name = (k: number): string => this.cluster.name(k);
    switch (step.kind) {
      case 'kill-leader':
      case 'kill-follower': {
        const k = step.kind === 'kill-leader' ? leader : follower;
        record.target = name(k);
        await this.cluster.kill(k, 'SIGKILL');
        await sleep(step.holdMs);
        this.cluster.start(k);
        break;
      }
      case 'pause-leader':
      case 'pause-follower': {
        const k = step.kind === 'pause-leader' ? leader : follower;
        record.target = name(k);
        this.cluster.pause(k);
        await sleep(step.holdMs);
        this.cluster.resume(k);
        break;
      }
      case 'transfer-leader': {
        record.target = name(follower);
        try {
          await this.cluster.cluster.client(this.cluster.cluster.allClientAddresses(), 15_000).transferLeadership(name(follower));
          record.detail = `${name(leader)} -> ${name(follower)}`;
        } catch (err) {
          record.detail = `transfer refused: ${(err as Error).message}`;
        }
        break;
      }
      case 'partition-leader':
      case 'partition-follower': {
        const k = step.kind === 'partition-leader' ? leader : follower;
        record.target = name(k);
        this.isolate(k);
        await sleep(step.holdMs);
        this.reconnect(k);
        break;
      }
      case 'partition-link': {
        const net = this.ctx.net!;
        record.target = `${name(leader)}<->${name(follower)}`;
        net.cutBoth(this.cluster.partitionNode(leader), this.cluster.partitionNode(follower));
        await sleep(step.holdMs);
        net.healAll();
        break;
      }
      case 'partition-flapping': {
        const k = this.cluster.members[step.pick % this.cluster.size] as number;
        record.target = name(k);
        for (let i = 0; i < 4; i++) {
          this.isolate(k);
          await sleep(step.holdMs);
          this.reconnect(k);
          await sleep(step.holdMs);
        }
        break;
      }
      case 'isolate-until-snapshot': {
        // Cut a follower off until the leader purged past it, heal, and once its download has
        // begun, pause (even pick) or kill -9 (odd pick) the leader it downloads from: the follower
        // must give up on it and install from the next leader.
        record.target = name(follower);
        const before = this.installsOf(follower);
        const startedBefore = this.installStartsOf(follower);
        const { commit } = await this.appliedOf(leader);
        this.isolate(follower);
        const isolatedAt = Date.now();
        // The follower's log may hold entries up to what the leader had sent; a margin covers them.
        const purged = await this.waitPurgedPast(leader, commit + 50, 60_000);
        await sleep(Math.max(0, isolatedAt + step.holdMs - Date.now()));
        this.reconnect(follower);
        record.healedAt = this.ctx.clock();
        const downloading = await this.waitFor(() => this.installStartsOf(follower) > startedBefore, 30_000, 25);
        let leaderFault = 'no download seen';
        if (downloading && this.installsOf(follower) === before) {
          const pause = step.pick % 2 === 0;
          if (pause) this.cluster.pause(leader);
          else await this.cluster.kill(leader, 'SIGKILL');
          await sleep(3_000);
          if (pause) this.cluster.resume(leader);
          else this.cluster.start(leader);
          leaderFault = `leader ${pause ? 'paused 3 s' : 'killed and restarted'} during the download`;
        } else if (downloading) leaderFault = 'the install finished before the leader fault';
        const installed = await this.waitFor(() => this.installsOf(follower) > before, this.ctx.healBoundMs);
        record.detail = `${purged ? 'leader purged past the follower' : 'leader did not purge within 60 s'}; ${leaderFault}; ${installed ? 'installed a snapshot' : 'no install seen'}`;
        break;
      }
      case 'crash-during-install': {
        // The follower is down while the leader purges past it, then comes back with a failpoint
        // that kills it in the middle of the install; it must recover and install on restart.
        const failpoint = INSTALL_FAILPOINTS[step.pick % INSTALL_FAILPOINTS.length] as string;
        record.target = name(follower);
        const { commit } = await this.appliedOf(leader);
        await this.cluster.kill(follower, 'SIGKILL');
        const purged = await this.waitPurgedPast(leader, commit + 50, 60_000);
        this.cluster.expectExit(follower);
        const node = this.cluster.start(follower, { [FAILPOINTS_ENV]: failpoint });
        const giveUp = new AbortController();
        const died = await Promise.race([node.exited!.then(() => true), sleep(60_000, false, { signal: giveUp.signal }).catch(() => false)]);
        giveUp.abort();
        if (!died) await this.cluster.kill(follower, 'SIGKILL');
        else node.process = undefined;
        this.cluster.start(follower);
        record.detail = `${failpoint}: ${purged ? 'leader purged past the follower' : 'leader did not purge within 60 s'}; ${died ? 'killed at the failpoint' : 'never reached the failpoint'}`;
        break;
      }
      case 'slow-disk': {
        const k = this.cluster.members[step.pick % this.cluster.size] as number;
        const delayMs = 50 + ((step.pick >>> 8) % 350);
        record.target = name(k);
        await this.cluster.kill(k, 'SIGKILL');
        this.cluster.start(k, { [FAILPOINTS_ENV]: `storage.fsync:delay=${delayMs}` });
        await sleep(step.holdMs);
        await this.cluster.kill(k, 'SIGKILL');
        this.cluster.start(k);
        record.detail = `${k === leader ? 'the leader' : 'a follower'} ran with fsync ${delayMs} ms slower for ${(step.holdMs / 1000).toFixed(1)} s`;
        break;
      }
      case 'disk-full': {
        const writes = 20 + ((step.pick >>> 8) % 180);
        record.target = name(follower);
        await this.cluster.kill(follower, 'SIGKILL');
        this.cluster.expectExit(follower);
        const node = this.cluster.start(follower, { [FAILPOINTS_ENV]: `storage.write:enospc=${writes}` });
        const giveUp = new AbortController();
        const code = await Promise.race([node.exited!, sleep(60_000, 'still running', { signal: giveUp.signal }).catch(() => 'still running')]);
        giveUp.abort();
        const said = /ENOSPC/.test(this.cluster.cluster.output(follower));
        if (code === 'still running') await this.cluster.kill(follower, 'SIGKILL');
        else node.process = undefined;
        this.cluster.start(follower);
        record.detail = `disk full from write ${writes}: ${code === 'still running' ? 'the node kept running for 60 s' : `the node stopped (exit code ${code})`}${said ? ', naming ENOSPC' : ', without naming ENOSPC'}`;
        break;
      }
      case 'remove-readd-member': {
        const candidates = followers.filter((k) => k !== PRIMORDIAL);
        const k = candidates[step.pick % candidates.length] as number;
        record.target = name(k);
        const admin = this.cluster.cluster.client(this.cluster.cluster.allClientAddresses(), 30_000);
        try {
          await admin.removeScm(name(k));
        } catch (err) {
          const members = (await admin.getClusterInfo()).members.map((m) => m.nodeId);
          if (members.includes(name(k))) {
            record.detail = `removal failed, member kept: ${(err as Error).message}`;
            break;
          }
        }
        await this.cluster.kill(k, 'SIGKILL');
        await rm(this.cluster.cluster.nodeDir(k), { recursive: true, force: true });
        await bootstrapFromRunningScms(this.cluster.cluster.config(k), 30_000);
        this.cluster.start(k);
        record.detail = 'removed, wiped, bootstrapped and started again';
        break;
      }
    }
    if (record.healedAt === 0) record.healedAt = this.ctx.clock();
    record.recoveredAt = await this.waitRecovered(this.ctx.healBoundMs);
    return record;
  }

  private async waitFor(check: () => boolean, boundMs: number, everyMs = 250): Promise<boolean> {
    const deadline = Date.now() + boundMs;
    while (Date.now() < deadline) {
      if (check()) return true;
      await sleep(everyMs);
    }
    return false;
  }
}
