// Re-chunks a byte stream into fixed-size chunks, holding one back so the final chunk can be
// flagged `eof` (our stream's last message always carries the last bytes, never an empty tail).
// Bytes before `skip` are dropped (resuming a download at an offset).

export interface Chunk {
  readonly data: Buffer;
  readonly offset: number;
  readonly eof: boolean;
}

export async function* fixedSizeChunks(source: AsyncIterable<Buffer>, chunkSize: number, skip = 0): AsyncGenerator<Chunk> {
  if (!Number.isInteger(chunkSize) || chunkSize <= 0) throw new Error(`chunk size must be a positive integer, got ${chunkSize}`);
  if (!Number.isSafeInteger(skip) || skip < 0) throw new Error(`resume offset must be a non-negative integer, got ${skip}`);
  let position = 0; // bytes of the source consumed so far
  let fill = Buffer.allocUnsafe(chunkSize);
  let filled = 0;
  let held: Chunk | undefined;
  for await (const piece of source) {
    let start = 0;
    if (position < skip) start = Math.min(piece.length, skip - position);
    position += piece.length;
    while (start < piece.length) {
      const n = Math.min(chunkSize - filled, piece.length - start);
      piece.copy(fill, filled, start, start + n);
      filled += n;
      start += n;
      if (filled === chunkSize) {
        if (held !== undefined) yield held;
        held = { data: fill, offset: position - (piece.length - start) - chunkSize, eof: false };
        fill = Buffer.allocUnsafe(chunkSize);
        filled = 0;
      }
    }
  }
  if (position < skip) throw new RangeError(`resume offset ${skip} is beyond the end of the stream (${position} bytes)`);
  if (filled > 0) {
    if (held !== undefined) yield held;
    yield { data: fill.subarray(0, filled), offset: position - filled, eof: true };
  } else if (held !== undefined) {
    yield { ...held, eof: true };
  } else {
    // Nothing after `skip`: an empty final message still marks the end.
    yield { data: Buffer.alloc(0), offset: position, eof: true };
  }
}
