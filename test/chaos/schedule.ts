// The fault schedule: which faults, in which order, held how long, and the numbers that pick their
// targets, all drawn from the run's seed before anything starts. The same seed gives the same
// schedule; which node is leader when a step runs (and so which node a pick lands on) is up to the
// processes.
import { SeededRandom } from '../../src/raft/random.js';

export const FAULT_KINDS = [
  'kill-leader',
  'kill-follower',
  'pause-leader',
  'pause-follower',
  'transfer-leader',
  'partition-leader',
  'partition-follower',
  'partition-link',
  'partition-flapping',
  'isolate-until-snapshot',
  'crash-during-install',
  'remove-readd-member',
  'slow-disk',
  'disk-full',
] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

/** Kinds that cut the network, and so need iptables and root. */
export const NETWORK_KINDS: ReadonlySet<FaultKind> = new Set<FaultKind>(['partition-leader', 'partition-follower', 'partition-link', 'partition-flapping']);

export interface FaultStep {
  readonly index: number;
  readonly kind: FaultKind;
  /** How long the fault is held before it is healed (flapping: each cut and each heal). */
  readonly holdMs: number;
  /** Picks the target among the candidates the step finds (candidates[pick % length]). */
  readonly pick: number;
  /** Quiet time before the step. */
  readonly quietMs: number;
}

const HOLD_MS: Record<FaultKind, readonly [number, number]> = {
  'kill-leader': [1_500, 4_000],
  'kill-follower': [1_500, 4_000],
  // Longer than the election timeout (1 s to 1.2 s in the chaos configuration).
  'pause-leader': [2_500, 4_000],
  'pause-follower': [2_500, 4_000],
  'transfer-leader': [0, 0],
  'partition-leader': [2_500, 5_000],
  'partition-follower': [2_500, 5_000],
  'partition-link': [2_500, 5_000],
  'partition-flapping': [400, 1_500],
  // At least this long, and until the leader has purged past the follower. Shorter is not enough:
  // the leader's appends queued on the stalled stream are delivered when the link comes back, and
  // the follower catches up from them; only once gRPC keepalive (10 s + 5 s) has torn the stream
  // down are they lost, so the leader must find the follower behind its log and notify it.
  'isolate-until-snapshot': [20_000, 25_000],
  'crash-during-install': [0, 0],
  'remove-readd-member': [0, 0],
  // A node restarted with every fsync of its Raft log this much slower...
  'slow-disk': [3_000, 5_000],
  // ...or with its disk full after a few writes; it is restarted with space again once it stopped.
  'disk-full': [0, 0],
};

/**
 * `count` steps for the kinds given: the first round has every kind once in a seeded order (so a
 * short run covers them all), then kinds are drawn at random.
 */
export function planFaults(seed: number, kinds: readonly FaultKind[], count: number): FaultStep[] {
  const random = new SeededRandom(seed);
  const between = (range: readonly [number, number]): number => range[0] + random.nextInt(range[1] - range[0] + 1);
  const firstRound = [...kinds];
  for (let i = firstRound.length - 1; i > 0; i--) {
    const j = random.nextInt(i + 1);
    [firstRound[i], firstRound[j]] = [firstRound[j] as FaultKind, firstRound[i] as FaultKind];
  }
  const steps: FaultStep[] = [];
  for (let index = 0; index < count; index++) {
    const kind = index < firstRound.length ? (firstRound[index] as FaultKind) : (kinds[random.nextInt(kinds.length)] as FaultKind);
    steps.push({ index, kind, holdMs: between(HOLD_MS[kind]), pick: random.nextUint32(), quietMs: between([300, 1_000]) });
  }
  return steps;
}
