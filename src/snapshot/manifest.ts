// The checkpoint tarball's manifest: the first tar entry, `MANIFEST.json`. It lists every file with
// its size and SHA-256 and says which checkpoint this is (id, term/index, cluster), so the follower
// knows before it writes anything what it may write and how much (the caps of safe-extract.ts), and
// can prove the extracted directory is exactly what the leader packed, independently of the
// per-chunk transport checksums.
import type { TermIndex } from '../statemachine/transaction-info.js';

export const MANIFEST_NAME = 'MANIFEST.json';
export const MANIFEST_FORMAT = 1;
/** A manifest bigger than this is hostile (a real one is a few hundred bytes per file). */
export const MAX_MANIFEST_BYTES = 16 * 1024 * 1024;

export interface ManifestFile {
  readonly path: string;
  readonly size: number;
  readonly sha256: string;
}

export interface Manifest {
  readonly format: number;
  readonly checkpointId: string;
  readonly clusterId: string;
  readonly termIndex: TermIndex;
  readonly files: readonly ManifestFile[];
}

export function serializeManifest(manifest: Manifest): Buffer {
  return Buffer.from(JSON.stringify(manifest, null, 1) + '\n', 'utf8');
}

/** Parses and structurally validates a manifest; every problem names the offending field. */
export function parseManifest(bytes: Buffer): Manifest {
  let raw: unknown;
  try {
    raw = JSON.parse(bytes.toString('utf8'));
  } catch (err) {
    throw new Error(`${MANIFEST_NAME} is not valid JSON: ${(err as Error).message}`, { cause: err });
  }
  const obj = asRecord(raw, MANIFEST_NAME);
  if (obj['format'] !== MANIFEST_FORMAT) throw new Error(`${MANIFEST_NAME} has unsupported format ${JSON.stringify(obj['format'])}, expected ${MANIFEST_FORMAT}`);
  const checkpointId = asString(obj['checkpointId'], 'checkpointId');
  const clusterId = asString(obj['clusterId'], 'clusterId');
  const ti = asRecord(obj['termIndex'], 'termIndex');
  const termIndex = { term: asCount(ti['term'], 'termIndex.term'), index: asCount(ti['index'], 'termIndex.index') };
  if (!Array.isArray(obj['files'])) throw new Error(`${MANIFEST_NAME} field files must be an array`);
  const seen = new Set<string>();
  const files = obj['files'].map((f: unknown, i: number) => {
    const rec = asRecord(f, `files[${i}]`);
    const file = {
      path: asString(rec['path'], `files[${i}].path`),
      size: asCount(rec['size'], `files[${i}].size`),
      sha256: asString(rec['sha256'], `files[${i}].sha256`),
    };
    if (!/^[0-9a-f]{64}$/.test(file.sha256)) throw new Error(`${MANIFEST_NAME} files[${i}].sha256 is not a hex SHA-256`);
    if (seen.has(file.path)) throw new Error(`${MANIFEST_NAME} lists ${JSON.stringify(file.path)} twice`);
    seen.add(file.path);
    return file;
  });
  return { format: MANIFEST_FORMAT, checkpointId, clusterId, termIndex, files };
}

function asRecord(v: unknown, what: string): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error(`${MANIFEST_NAME} field ${what} must be an object`);
  return v as Record<string, unknown>;
}

function asString(v: unknown, what: string): string {
  if (typeof v !== 'string' || v === '') throw new Error(`${MANIFEST_NAME} field ${what} must be a non-empty string`);
  return v;
}

function asCount(v: unknown, what: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw new Error(`${MANIFEST_NAME} field ${what} must be a non-negative integer`);
  return v;
}
