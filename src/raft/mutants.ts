// Test-only switches that put known bugs back, one at a time, so that tests and the simulator
// (`npm run sim:mutants`) can show they catch each of them: a check that cannot fail proves
// nothing. Production never sets one; only code under test/ calls setMutant(), and every switch is
// read as `mutant('name')`, which is false whenever none is set.
//
// Each name is a bug this project once had (see docs/architecture.md, "Safety regressions").
export const MUTANT_NAMES = [
  /** Installing a checkpoint keeps the configuration the follower had, not the checkpoint's own. */
  'install-keeps-old-config',
  /** Late or duplicated snapshot statuses are believed; installs decide by commit index and wipe the log. */
  'stale-snapshot-status',
  /** A candidate counts its own vote (and a lone voter wins) before its new term and vote are durable. */
  'self-vote-before-durable',
  /** Lease reads resume at once after an abandoned leadership transfer. */
  'lease-after-abandoned-transfer',
  /** A voter of the committed configuration stops campaigning once a change removing it is appended. */
  'removed-voter-stops-campaigning',
  /** The leader ignores a rejection at or below a follower's recorded match. */
  'ignore-rejection-below-match',
  /** A missing raft-meta.conf is read as an empty configuration. */
  'missing-conf-is-empty',
  /** The leader commits entries of earlier terms by counting replicas (Raft Figure 8). */
  'figure8-commit',
  /** A follower commits up to the leader's commit index even past what this append proved matching. */
  'follower-commit-bound',
  /** A follower takes a heartbeat's commit index without checking its own entry there has the leader's term. */
  'heartbeat-commit-unchecked',
] as const;

export type MutantName = (typeof MUTANT_NAMES)[number];

let active: MutantName | undefined;

/** Whether the named bug is switched back on (test only). */
export function mutant(name: MutantName): boolean {
  return active === name;
}

/** Test only: switch one bug back on (or none with undefined). */
export function setMutant(name: MutantName | undefined): void {
  if (name !== undefined && !MUTANT_NAMES.includes(name)) throw new Error(`unknown mutant ${JSON.stringify(name)}`);
  active = name;
}

/** Test only: runs `body` with the named bug switched on, then off again. */
export function withMutant<T>(name: MutantName, body: () => T): T {
  setMutant(name);
  try {
    return body();
  } finally {
    setMutant(undefined);
  }
}
