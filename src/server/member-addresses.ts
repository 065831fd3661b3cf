// The IP addresses of the group's members, for the peer ports' listeners (peer-port-listener.ts
// admits a connection from one of them past the connection limit, not past its address's share).
// The node gives it the members' hosts (of the current Raft configuration and the configured
// SCMs) whenever the configuration changes; each host is resolved then, and again periodically,
// because a member's address can change without a configuration change (in Kubernetes a
// restarted pod gets a new IP). A literal IP needs no lookup. A failed lookup keeps what the host
// resolved to before and is logged once per failure episode (again only after a success); a host
// no longer among the members loses its addresses at once.
import type { LookupAddress } from 'node:dns';
import { lookup as dnsLookup } from 'node:dns/promises';
import { isIP } from 'node:net';

/** How often the members' hosts are resolved again. */
export const MEMBER_ADDRESS_REFRESH_MS = 30_000;

/** An address as the listeners compare it: an IPv4-mapped IPv6 address as its IPv4 address; IPv6 in lower case. */
export function canonicalAddress(address: string): string {
  const lower = address.toLowerCase();
  const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/.exec(lower);
  return mapped !== null ? mapped[1]! : lower;
}

export interface MemberAddressesOptions {
  /** Resolves a host name to its addresses: node:dns/promises lookup by default. */
  readonly lookup?: (hostname: string, options: { all: true }) => Promise<LookupAddress[]>;
  /** Runs `task` every `ms` until the returned cancel is called (an unref'd setInterval by default). */
  readonly every?: (ms: number, task: () => void) => () => void;
  readonly refreshMs?: number;
  readonly log: {
    warn(fields: object, msg: string): void;
    info(fields: object, msg: string): void;
  };
}

function unrefInterval(ms: number, task: () => void): () => void {
  const timer = setInterval(task, ms);
  timer.unref();
  return () => clearInterval(timer);
}

export class MemberAddresses {
  /** Each member host and the addresses it resolved to last (none yet: empty). */
  private readonly byHost = new Map<string, ReadonlySet<string>>();
  private known: ReadonlySet<string> = new Set();
  /** Hosts whose last lookup failed (logged once until one succeeds). */
  private readonly failing = new Set<string>();
  private cancelTimer: (() => void) | undefined;
  private running: Promise<void> | undefined;
  private again = false;
  private stopped = false;
  private readonly lookup: NonNullable<MemberAddressesOptions['lookup']>;

  constructor(private readonly options: MemberAddressesOptions) {
    this.lookup = options.lookup ?? dnsLookup;
  }

  /** Whether `address` (a socket's remoteAddress) is a member's. */
  has(address: string): boolean {
    return this.known.has(canonicalAddress(address));
  }

  /** The members' addresses known now. */
  addresses(): ReadonlySet<string> {
    return this.known;
  }

  /** The members' hosts (names or literal IPs), after a configuration change; resolves them again. */
  setHosts(hosts: Iterable<string>): Promise<void> {
    const wanted = new Set([...hosts].map((h) => h.replace(/^\[(.*)\]$/, '$1')).filter((h) => h !== ''));
    let changed = wanted.size !== this.byHost.size;
    for (const host of [...this.byHost.keys()]) {
      if (!wanted.has(host)) {
        this.byHost.delete(host);
        this.failing.delete(host);
        changed = true;
      }
    }
    for (const host of wanted) if (!this.byHost.has(host)) this.byHost.set(host, new Set());
    if (!changed) return this.running ?? Promise.resolve();
    this.recompute();
    return this.refresh();
  }

  /** Resolves the hosts now and every refreshMs after, until stop(). */
  start(): void {
    if (this.stopped || this.cancelTimer !== undefined) return;
    this.cancelTimer = (this.options.every ?? unrefInterval)(this.options.refreshMs ?? MEMBER_ADDRESS_REFRESH_MS, () => void this.refresh());
    void this.refresh();
  }

  stop(): void {
    this.stopped = true;
    this.cancelTimer?.();
    this.cancelTimer = undefined;
  }

  /** Resolves every host once (a refresh asked for while one runs runs again after it). */
  refresh(): Promise<void> {
    if (this.stopped) return Promise.resolve();
    if (this.running !== undefined) {
      this.again = true;
      return this.running;
    }
    const run = async (): Promise<void> => {
      do {
        this.again = false;
        await Promise.all([...this.byHost.keys()].map((host) => this.resolve(host)));
        this.recompute();
      } while (this.again && !this.stopped);
    };
    this.running = run().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  private async resolve(host: string): Promise<void> {
    let addresses: ReadonlySet<string>;
    if (isIP(host) !== 0) {
      addresses = new Set([canonicalAddress(host)]);
    } else {
      try {
        const found = await this.lookup(host, { all: true });
        addresses = new Set(found.map((a) => canonicalAddress(a.address)));
      } catch (err) {
        if (!this.byHost.has(host) || this.stopped) return;
        if (!this.failing.has(host)) {
          this.failing.add(host);
          const before = [...(this.byHost.get(host) ?? [])];
          this.options.log.warn(
            { event: 'member_address_lookup_failed', host, err, keeping: before },
            `cannot resolve member host ${host} (${(err as Error).message}); its connections to the peer ports are recognized by the addresses known before (${before.length > 0 ? before.join(', ') : 'none'}) until a lookup succeeds; retried every ${(this.options.refreshMs ?? MEMBER_ADDRESS_REFRESH_MS) / 1000} s, logged again only after one has`,
          );
        }
        return;
      }
    }
    // A host removed meanwhile stays removed.
    if (!this.byHost.has(host) || this.stopped) return;
    if (this.failing.delete(host)) this.options.log.info({ event: 'member_address_lookup_recovered', host, addresses: [...addresses] }, `member host ${host} resolves again`);
    this.byHost.set(host, addresses);
  }

  private recompute(): void {
    const next = new Set<string>();
    for (const addresses of this.byHost.values()) for (const a of addresses) next.add(a);
    const same = next.size === this.known.size && [...next].every((a) => this.known.has(a));
    if (same) return;
    this.known = next;
    this.options.log.info({ event: 'member_addresses', addresses: [...next] }, `the peer ports admit connections from the members' addresses past ozone.scm.peer.max.connections: ${[...next].join(', ') || 'none'}`);
  }
}
