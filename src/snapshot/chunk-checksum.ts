// The per-chunk `checksum` field (int64 in Ozone's proto, which leaves the algorithm open):
// we use CRC-32 (IEEE, the polynomial of gzip and zlib) of the chunk's `data`, carried as a
// non-negative integer in [0, 2^32). zlib.crc32 is native and present from Node 20.15.
import { crc32 } from 'node:zlib';

export function chunkChecksum(data: Uint8Array): number {
  return crc32(data) >>> 0;
}
