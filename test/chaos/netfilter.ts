// Network partitions between SCM processes that all listen on 127.0.0.1. Addresses cannot tell the
// nodes apart, so each node runs as its own uid and a private iptables chain drops the TCP packets
// a node's uid sends to another node's ports (`-m owner --uid-owner`). Raft messages, InterSCM
// downloads and peer calls each travel on a connection the sender opened, so dropping what A sends
// to B's ports cuts A→B, and the mirror rule cuts B→A. Only 127.0.0.0/8 is ever matched.
//
// The chain is ours alone (its name carries the run's port block) and is removed on every way out:
// `removeSync()` in the runner's finally, and through onTerminate on exit, SIGINT and SIGTERM.
import { execFileSync } from 'node:child_process';
import { onTerminate } from './cleanup.js';

export type NetfilterAvailability = { readonly ok: true } | { readonly ok: false; readonly reason: string };

function iptables(args: readonly string[]): void {
  execFileSync('iptables', ['-w', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
}

function tryIptables(args: readonly string[]): boolean {
  try {
    iptables(args);
    return true;
  } catch {
    return false;
  }
}

/** Whether this process may add iptables rules with the owner match (root, iptables present). */
export function netfilterAvailability(): NetfilterAvailability {
  if (process.getuid?.() !== 0) return { ok: false, reason: 'not running as root' };
  try {
    execFileSync('iptables', ['--version'], { stdio: 'ignore' });
  } catch {
    return { ok: false, reason: 'iptables is not installed' };
  }
  const probe = `SCMCHAOSPROBE${process.pid}`;
  const works = tryIptables(['-N', probe]) && tryIptables(['-A', probe, '-p', 'tcp', '-d', '127.0.0.0/8', '-m', 'owner', '--uid-owner', '65000', '-j', 'DROP']);
  tryIptables(['-F', probe]);
  tryIptables(['-X', probe]);
  return works ? { ok: true } : { ok: false, reason: 'iptables refused an owner-match rule (no xt_owner or no CAP_NET_ADMIN)' };
}

export interface PartitionNode {
  readonly name: string;
  readonly uid: number;
  /** Every port the node listens on. */
  readonly ports: readonly number[];
}

export class Netfilter {
  private installed = false;
  private readonly cuts = new Set<string>();
  private unregister: (() => void) | undefined;

  constructor(readonly chain: string) {
    if (!/^[A-Za-z0-9_-]{1,28}$/.test(chain)) throw new Error(`bad chain name ${chain}`);
  }

  /** Creates the chain (replacing one a killed run left) and sends loopback output through it. */
  install(): void {
    this.removeSync();
    iptables(['-N', this.chain]);
    iptables(['-I', 'OUTPUT', '-o', 'lo', '-d', '127.0.0.0/8', '-j', this.chain]);
    this.installed = true;
    this.unregister = onTerminate(() => this.removeSync());
  }

  /** Drops what `from` sends to `to`'s ports (one direction). */
  cut(from: PartitionNode, to: PartitionNode): void {
    const key = `${from.name}>${to.name}`;
    if (this.cuts.has(key)) return;
    iptables(['-A', this.chain, '-p', 'tcp', '-d', '127.0.0.0/8', '-m', 'owner', '--uid-owner', String(from.uid), '-m', 'multiport', '--dports', to.ports.join(','), '-j', 'DROP']);
    this.cuts.add(key);
  }

  /** Both directions between a and b. */
  cutBoth(a: PartitionNode, b: PartitionNode): void {
    this.cut(a, b);
    this.cut(b, a);
  }

  /** Cuts `node` off from every other node (it still answers clients). */
  isolate(node: PartitionNode, others: readonly PartitionNode[]): void {
    for (const other of others) if (other.name !== node.name) this.cutBoth(node, other);
  }

  get activeCuts(): readonly string[] {
    return [...this.cuts];
  }

  /** Removes every rule; the chain stays installed. */
  healAll(): void {
    if (!this.installed) return;
    iptables(['-F', this.chain]);
    this.cuts.clear();
  }

  /** Takes the chain out of OUTPUT and deletes it, whatever state it is in. Safe to call twice. */
  removeSync(): void {
    while (tryIptables(['-D', 'OUTPUT', '-o', 'lo', '-d', '127.0.0.0/8', '-j', this.chain]));
    tryIptables(['-F', this.chain]);
    tryIptables(['-X', this.chain]);
    this.cuts.clear();
    this.installed = false;
    this.unregister?.();
    this.unregister = undefined;
  }
}

/** Whether a chain of this name is present (for tests of the clean-up). */
export function chainExists(chain: string): boolean {
  return tryIptables(['-S', chain]);
}
