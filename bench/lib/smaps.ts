// Resident anonymous memory of a process by kind of mapping, from /proc/<pid>/smaps: what is
// glibc malloc's (the main arena grows the brk [heap]; each other arena is a region of at most
// 64 MiB aligned on 64 MiB, HEAP_MAX_SIZE), what are stacks, and the rest (V8's heap pages and
// backing stores or other allocations large enough to get an mmap of their own). Pure: the caller
// reads the file.

const ARENA_BYTES = 64n * 1024n * 1024n;

export interface AnonByMapping {
  /** kB resident in [heap]: glibc's main arena (the main thread's malloc). */
  readonly brkHeap: number;
  /** kB anonymous in 64 MiB-aligned regions of at most 64 MiB: glibc's other arenas. */
  readonly arenas: number;
  readonly stacks: number;
  /** kB anonymous in every other unnamed mapping. */
  readonly other: number;
  /** How many other mappings hold anonymous memory. */
  readonly otherCount: number;
}

/** Resident kB of anonymous memory by kind of mapping, from /proc/<pid>/smaps. */
export function anonByMapping(smaps: string): AnonByMapping {
  const out = { brkHeap: 0, arenas: 0, stacks: 0, other: 0, otherCount: 0 };
  const lines = smaps.split('\n');
  const header = /^([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ \S+ (\d+)\s*(.*)$/;
  let current: { start: bigint; end: bigint; inode: string; name: string } | undefined;
  let rss = 0;
  let anon = 0;
  const flush = (): void => {
    if (current === undefined) return;
    if (current.name === '[heap]') out.brkHeap += rss;
    else if (current.name.startsWith('[stack')) out.stacks += rss;
    else if (current.inode === '0' && current.name === '') {
      // The readable part of a non-main arena is one mapping starting on a 64 MiB boundary.
      if (current.start % ARENA_BYTES === 0n && current.end - current.start <= ARENA_BYTES) out.arenas += anon;
      else {
        out.other += anon;
        if (anon > 0) out.otherCount++;
      }
    }
  };
  for (const line of lines) {
    const m = header.exec(line);
    if (m !== null) {
      flush();
      current = { start: BigInt(`0x${m[1]}`), end: BigInt(`0x${m[2]}`), inode: m[4] as string, name: (m[5] ?? '').trim() };
      rss = 0;
      anon = 0;
      continue;
    }
    const field = /^(Rss|Anonymous):\s+(\d+) kB/.exec(line);
    if (field !== null) {
      if (field[1] === 'Rss') rss = Number(field[2]);
      else anon = Number(field[2]);
    }
  }
  flush();
  return out;
}
