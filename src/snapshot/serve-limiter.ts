// Per-requester and per-peer limits on checkpoint downloads, checked by the InterSCM service before
// it takes or streams a checkpoint. One client could otherwise make the leader stream a full
// database per request it sends (seven from one packet was seen). Two keys are limited, each with
// its own caps: the requesterId when the request names one, and the peer's address (host, without
// the port), which a client cannot change by renaming itself. A requesterId is the client's own
// say-so, so it is counted together with the address it came from: a client elsewhere cannot use
// up a node's quota by sending that node's id. A refusal is a
// ResourceExhaustedError (RESOURCE_EXHAUSTED on the wire) saying which cap and when to retry, in
// words and as `retryAfterMs` (the `scm-retry-after-ms` trailer the downloader honours).
// Only admitted downloads count towards the per-minute caps, and a per-minute refusal's hint is
// exact (when the oldest start leaves the window), so a client that waits as told gets past that
// cap at its next call: its own retries never lock it out. A `busy` refusal (all the leader's transfer slots taken,
// checkpoint-provider.ts) comes after admission here, so it does count: a follower polling as its
// 5 s hint says starts at most 12 a minute, the default per-requester cap, and is never refused
// for that alone (its polls are at least 5 s apart). With other starts of its own in the window (a
// failed attempt, an earlier download) it may be refused as over the cap, but only while those are
// in the window, never twice in a row, and each time only until its oldest start leaves; those
// waits come out of its busy budget like any other hinted wait. (The per-address cap, 30 a minute,
// holds two such followers behind one address.)
import { IN_PROGRESS_RETRY_AFTER_MS, ResourceExhaustedError } from './checkpoint-provider.js';

export interface RateLimit {
  /** Downloads in progress at once. */
  readonly maxConcurrent?: number;
  /** Downloads started within any 60 seconds. */
  readonly maxPerMinute?: number;
}

/** A follower runs one download at a time; a second covers a retry that overlaps a stalled one. */
export const DEFAULT_REQUESTER_LIMIT: Required<RateLimit> = Object.freeze({ maxConcurrent: 2, maxPerMinute: 12 });
/** Several nodes may share an address (a local cluster): two followers and a backup at once. */
export const DEFAULT_PEER_LIMIT: Required<RateLimit> = Object.freeze({ maxConcurrent: 3, maxPerMinute: 30 });

export interface ServeLimiterOptions {
  readonly perRequester?: RateLimit;
  readonly perPeer?: RateLimit;
  readonly now?: () => number;
}

/** An admitted download; release it when the download ends, however it ends (idempotent). */
export interface Admission {
  release(): void;
}

const WINDOW_MS = 60_000;

interface Usage {
  active: number;
  /** Start times of admitted downloads within the window, oldest first. */
  readonly starts: number[];
}

export class ServeLimiter {
  private readonly perRequester: Required<RateLimit>;
  private readonly perPeer: Required<RateLimit>;
  private readonly now: () => number;
  private readonly usage = new Map<string, Usage>();

  constructor(options: ServeLimiterOptions = {}) {
    this.perRequester = checkLimit({ ...DEFAULT_REQUESTER_LIMIT, ...options.perRequester }, 'perRequester');
    this.perPeer = checkLimit({ ...DEFAULT_PEER_LIMIT, ...options.perPeer }, 'perPeer');
    this.now = options.now ?? Date.now;
  }

  /** Admits one download, or throws ResourceExhaustedError naming the cap it would cross. */
  admit(requesterId: string | undefined, peer: string): Admission {
    const now = this.now();
    this.forgetIdle(now);
    const host = peerHost(peer);
    const keys: Array<{ key: string; label: string; limit: Required<RateLimit> }> = [];
    if (requesterId !== undefined) keys.push({ key: `requester\0${host}\0${requesterId}`, label: `requester ${JSON.stringify(requesterId)} from ${host}`, limit: this.perRequester });
    keys.push({ key: `peer\0${host}`, label: `peer ${host}`, limit: this.perPeer });
    for (const { key, label, limit } of keys) {
      const u = this.usage.get(key);
      if (u === undefined) continue;
      if (u.active >= limit.maxConcurrent) {
        throw new ResourceExhaustedError(`${label} has ${u.active} checkpoint downloads in progress, at most ${limit.maxConcurrent} at once; retry when one ends`, IN_PROGRESS_RETRY_AFTER_MS);
      }
      if (u.starts.length >= limit.maxPerMinute) {
        // Exactly when the oldest start leaves the window (forgetIdle drops it at that instant);
        // the message rounds up to whole seconds.
        const retryAfterMs = Math.max(1, (u.starts[0] ?? now) + WINDOW_MS - now);
        const retryIn = Math.ceil(retryAfterMs / 1000);
        throw new ResourceExhaustedError(`${label} started ${u.starts.length} checkpoint downloads in the last 60 s, at most ${limit.maxPerMinute} per minute; retry in ${retryIn} s`, retryAfterMs);
      }
    }
    const held = keys.map(({ key }) => {
      let u = this.usage.get(key);
      if (u === undefined) {
        u = { active: 0, starts: [] };
        this.usage.set(key, u);
      }
      u.active++;
      u.starts.push(now);
      return u;
    });
    let released = false;
    return {
      release: () => {
        if (released) return;
        released = true;
        for (const u of held) u.active--;
      },
    };
  }

  /** Drops start times that left the window, and keys with nothing left (memory stays bounded). */
  private forgetIdle(now: number): void {
    for (const [key, u] of this.usage) {
      while (u.starts.length > 0 && (u.starts[0] ?? 0) <= now - WINDOW_MS) u.starts.shift();
      if (u.active === 0 && u.starts.length === 0) this.usage.delete(key);
    }
  }
}

/** `host:port` as grpc-js reports a peer (IPv6 without brackets) → host. */
export function peerHost(peer: string): string {
  const m = /^(.*):\d+$/.exec(peer);
  return m?.[1] !== undefined && m[1] !== '' ? m[1].replace(/^\[(.*)\]$/, '$1') : peer;
}

function checkLimit(limit: Required<RateLimit>, what: string): Required<RateLimit> {
  for (const [name, value] of Object.entries(limit)) {
    if (!Number.isInteger(value) || value < 1) throw new Error(`${what}.${name} must be a positive integer, got ${String(value)}`);
  }
  return limit;
}
