// Majorities, in one place: elections, commit, ReadIndex confirmation, leases and check-quorum all
// ask "what does a majority of the voters agree on".

/** The smallest number of voters that is a majority of `voters`. */
export function majority(voters: number): number {
  return Math.floor(voters / 2) + 1;
}

/**
 * The largest value that at least a majority of `values` (one per voter) reach: the quorum commit
 * index when given match indexes, the confirmed round when given acknowledged rounds. `fallback`
 * when there are no voters. Sorts `values` in place.
 */
export function quorumValue(values: number[], fallback: number): number {
  if (values.length === 0) return fallback;
  values.sort((a, b) => b - a);
  return values[majority(values.length) - 1] as number;
}
