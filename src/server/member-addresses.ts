// The IP addresses of the group's members, for the peer ports' listeners (peer-port-listener.ts
// admits a connection from one of them past the connection limit, not past its address's share).
// The node gives it the members' hosts (of the current Raft configuration and the configured
// SCMs) whenever the configuration changes; each host is resolved then, again periodically and
// when a listener refuses a connection at its limit (at most every few seconds), because a
// member's address can change without a configuration change (in Kubernetes a restarted pod gets
// a new IP). Each host is resolved on its own, so that one whose lookup hangs holds up no other,
// and once at a time: a lookup (getaddrinfo) holds a thread of libuv's pool until it answers,
// and the pool also runs the leader's log fsync. One that has not answered within a timeout is
// reported as failed, and its answer is still taken when it comes. A literal IP needs no lookup.
// A failed lookup keeps what the host resolved to before (a resolver outage must not turn the
// members away) and is logged once per failure episode; a host no longer among the members loses
// its addresses at once.
import type { LookupAddress } from 'node:dns';
import { lookup as dnsLookup } from 'node:dns/promises';
import { isIP, SocketAddress } from 'node:net';

/** How often the members' hosts are resolved again. */
export const MEMBER_ADDRESS_REFRESH_MS = 30_000;
/** A lookup that has not answered by then is reported as failed (getaddrinfo can take tens of seconds). */
export const MEMBER_LOOKUP_TIMEOUT_MS = 5_000;
/** A refusal at the connection limit resolves the hosts again at most this often. */
export const MEMBER_REFRESH_ON_DEMAND_MS = 5_000;

/**
 * An address as the listeners compare it: IPv6 in its canonical text (lower case, zeros
 * compressed, no zone: Node reports a link-local peer with its zone, a lookup without), and an
 * IPv4-mapped IPv6 address as its IPv4 address.
 */
export function canonicalAddress(address: string): string {
  if (!address.includes(':')) return address;
  let text: string;
  try {
    // Node's own parser: canonical text, and it drops a zone.
    text = new SocketAddress({ address, family: 'ipv6' }).address;
  } catch {
    text = address.toLowerCase();
  }
  const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/.exec(text);
  return mapped !== null ? mapped[1]! : text;
}

export interface MemberAddressesOptions {
  /** Resolves a host name to its addresses: node:dns/promises lookup by default. */
  readonly lookup?: (hostname: string, options: { all: true }) => Promise<LookupAddress[]>;
  /** Runs `task` every `ms` until the returned cancel is called (an unref'd setInterval by default). */
  readonly every?: (ms: number, task: () => void) => () => void;
  /** Milliseconds clock, for refreshOnDemand's interval (Date.now by default). */
  readonly now?: () => number;
  readonly refreshMs?: number;
  readonly lookupTimeoutMs?: number;
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

/** Settles when `promise` does, or after `ms` (then calls `onLate`), whichever comes first. */
function waitAtMost(promise: Promise<void>, ms: number, onLate: () => void): Promise<void> {
  return new Promise<void>((resolve) => {
    const timer = setTimeout(() => {
      onLate();
      resolve();
    }, ms);
    timer.unref();
    void promise.finally(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}

export class MemberAddresses {
  /** Each member host and the addresses it resolved to last (none yet: empty). */
  private readonly byHost = new Map<string, ReadonlySet<string>>();
  private known: ReadonlySet<string> = new Set();
  /** Hosts whose last lookup failed (logged once until one succeeds). */
  private readonly failing = new Set<string>();
  /** The lookup running for each host, until it answers: a host is looked up once at a time. */
  private readonly inFlight = new Map<string, Promise<void>>();
  private readonly changeListeners = new Set<() => void>();
  private cancelTimer: (() => void) | undefined;
  private lastOnDemand = Number.NEGATIVE_INFINITY;
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

  /** Calls `listener` after each change of the addresses; returns a function that stops it. */
  onChange(listener: () => void): () => void {
    this.changeListeners.add(listener);
    return () => this.changeListeners.delete(listener);
  }

  /**
   * The members' hosts (names or literal IPs, IPv6 ones with or without brackets), after a
   * configuration change: a host no longer among them loses its addresses now; every host is
   * resolved again (one whose lookup is still running gets that lookup's answer). Settles once each
   * host's lookup has answered or timed out.
   */
  setHosts(hosts: Iterable<string>): Promise<void> {
    if (this.stopped) return Promise.resolve();
    const wanted = new Set([...hosts].map((h) => h.replace(/^\[(.*)\]$/, '$1')).filter((h) => h !== ''));
    for (const host of [...this.byHost.keys()]) {
      if (!wanted.has(host)) {
        this.byHost.delete(host);
        this.failing.delete(host);
      }
    }
    for (const host of wanted) if (!this.byHost.has(host)) this.byHost.set(host, new Set());
    this.recompute();
    return this.refresh();
  }

  /** Resolves the hosts every refreshMs until stop(). */
  start(): void {
    if (this.stopped || this.cancelTimer !== undefined) return;
    this.cancelTimer = (this.options.every ?? unrefInterval)(this.options.refreshMs ?? MEMBER_ADDRESS_REFRESH_MS, () => void this.refresh());
  }

  stop(): void {
    this.stopped = true;
    this.cancelTimer?.();
    this.cancelTimer = undefined;
  }

  /**
   * Resolves every host (one whose lookup is still running, answered or timed out, is not looked
   * up again); settles once each has answered or timed out; never rejects.
   */
  async refresh(): Promise<void> {
    if (this.stopped) return;
    await Promise.all([...this.byHost.keys()].map((host) => this.resolveHost(host)));
  }

  /**
   * A connection was refused at the limit: it may come from a member whose address changed since
   * the last refresh. Resolves the hosts again, at most once per MEMBER_REFRESH_ON_DEMAND_MS.
   */
  refreshOnDemand(): void {
    const now = (this.options.now ?? Date.now)();
    if (now - this.lastOnDemand < MEMBER_REFRESH_ON_DEMAND_MS) return;
    this.lastOnDemand = now;
    void this.refresh();
  }

  private resolveHost(host: string): Promise<void> {
    if (isIP(host) !== 0) {
      this.learn(host, new Set([canonicalAddress(host)]));
      return Promise.resolve();
    }
    let running = this.inFlight.get(host);
    if (running === undefined) {
      // Kept until the lookup itself answers, timed out or not.
      running = this.lookupHost(host).finally(() => this.inFlight.delete(host));
      this.inFlight.set(host, running);
    }
    const timeoutMs = this.options.lookupTimeoutMs ?? MEMBER_LOOKUP_TIMEOUT_MS;
    return waitAtMost(running, timeoutMs, () => this.lookupFailed(host, new Error(`the lookup of ${host} did not answer within ${timeoutMs} ms (its answer is still taken when it comes)`)));
  }

  /** Looks `host` up; applies the answer or reports the failure. Never rejects. */
  private async lookupHost(host: string): Promise<void> {
    let found: LookupAddress[];
    try {
      found = await this.lookup(host, { all: true });
    } catch (err) {
      this.lookupFailed(host, err);
      return;
    }
    this.learn(host, new Set(found.map((a) => canonicalAddress(a.address))));
  }

  /** What `host` resolves to now. */
  private learn(host: string, addresses: ReadonlySet<string>): void {
    // A host removed meanwhile stays removed.
    if (!this.byHost.has(host) || this.stopped) return;
    if (this.failing.delete(host)) this.options.log.info({ event: 'member_address_lookup_recovered', host, addresses: [...addresses] }, `member host ${host} resolves again`);
    this.byHost.set(host, addresses);
    this.recompute();
  }

  private lookupFailed(host: string, err: unknown): void {
    if (!this.byHost.has(host) || this.stopped || this.failing.has(host)) return;
    this.failing.add(host);
    const before = [...(this.byHost.get(host) ?? [])];
    const why = err instanceof Error ? err.message : String(err);
    this.options.log.warn(
      { event: 'member_address_lookup_failed', host, err: why, keeping: before },
      `cannot resolve member host ${host} (${why}); its connections to the peer ports are recognized by the addresses known before (${before.length > 0 ? before.join(', ') : 'none'}) until a lookup succeeds; retried every ${(this.options.refreshMs ?? MEMBER_ADDRESS_REFRESH_MS) / 1000} s, on a configuration change and after a refusal at the connection limit, logged again only after one has succeeded`,
    );
  }

  private recompute(): void {
    const next = new Set<string>();
    for (const addresses of this.byHost.values()) for (const a of addresses) next.add(a);
    const same = next.size === this.known.size && [...next].every((a) => this.known.has(a));
    if (same) return;
    this.known = next;
    this.options.log.info({ event: 'member_addresses', addresses: [...next] }, `the peer ports admit connections from the members' addresses past ozone.scm.peer.max.connections: ${[...next].join(', ') || 'none'}`);
    for (const listener of [...this.changeListeners]) listener();
  }
}
