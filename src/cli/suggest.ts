// "Did you mean …": the closest known word to a mistyped one, by edit distance (a transposition
// counts as one edit, as `contianer` for `container`), or a known word it is a prefix of.

/** Optimal string alignment distance: insertions, deletions, substitutions, adjacent transpositions. */
export function editDistance(a: string, b: string): number {
  const rows = a.length + 1;
  const cols = b.length + 1;
  const d: number[][] = Array.from({ length: rows }, (_, i) => Array.from({ length: cols }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  const at = (i: number, j: number): number => d[i]?.[j] ?? Number.POSITIVE_INFINITY;
  for (let i = 1; i < rows; i++) {
    for (let j = 1; j < cols; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(at(i - 1, j) + 1, at(i, j - 1) + 1, at(i - 1, j - 1) + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) best = Math.min(best, at(i - 2, j - 2) + 1);
      const row = d[i];
      if (row !== undefined) row[j] = best;
    }
  }
  return at(a.length, b.length);
}

/**
 * The known words close enough to `word` to be what was meant, best first: within a third of the
 * word's length in edits (at least 1, at most 3), or starting with it.
 */
export function suggestions(word: string, known: Iterable<string>): string[] {
  const limit = Math.min(3, Math.max(1, Math.floor(word.length / 3)));
  const lower = word.toLowerCase();
  const scored: [string, number][] = [];
  for (const candidate of new Set(known)) {
    const distance = editDistance(lower, candidate.toLowerCase());
    if (distance <= limit) scored.push([candidate, distance]);
    else if (lower.length >= 2 && candidate.toLowerCase().startsWith(lower)) scored.push([candidate, limit + 1]);
  }
  return scored.sort((x, y) => x[1] - y[1] || x[0].localeCompare(y[0])).map(([candidate]) => candidate);
}

/** `; did you mean "x"?` (or `"x" or "y"`), or nothing when no known word is close. */
export function didYouMean(word: string, known: Iterable<string>, quote: (s: string) => string = (s) => `"${s}"`): string {
  const close = suggestions(word, known).slice(0, 2);
  return close.length === 0 ? '' : `; did you mean ${close.map(quote).join(' or ')}?`;
}
