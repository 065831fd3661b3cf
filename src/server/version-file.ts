// `<ozone.scm.db.dirs>/scm/current/VERSION`: the SCM's identity, in Java properties form exactly as
// Ozone writes it (nodeType=SCM, scmUuid, clusterID=CID-<uuid>, cTime, layoutVersion). `scm init`
// creates it, `scm bootstrap` writes it with the quorum's clusterID, `scm start` refuses without it.
// Written as VERSION.tmp, fsynced, renamed, and the directory fsynced: a crash leaves the old file or
// the new one, never a torn one.
import { randomUUID } from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../durable-fs.js';
import { formatProperties, parseProperties, PropertiesFormatError } from '../java-properties.js';
import type { ScmConfig } from './config.js';

export const VERSION_FILE_NAME = 'VERSION';
export const CLUSTER_ID_PREFIX = 'CID-';
/** The layout version this implementation writes and understands. */
export const CURRENT_LAYOUT_VERSION = 0;

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export interface ScmVersionInfo {
  readonly nodeType: 'SCM';
  readonly scmUuid: string;
  /** `CID-<uuid>`. */
  readonly clusterId: string;
  /** Creation time, ms since the epoch. */
  readonly cTime: number;
  readonly layoutVersion: number;
  /** Other properties found in the file, kept so a rewrite does not drop them. */
  readonly extra: ReadonlyMap<string, string>;
}

export class VersionFileMissingError extends Error {
  constructor(readonly path: string) {
    super(`${path} does not exist: this SCM is not initialised (run \`scm init\` on the first node, \`scm bootstrap\` on the others)`);
    this.name = 'VersionFileMissingError';
  }
}

export class VersionFileCorruptError extends Error {
  constructor(
    readonly path: string,
    reason: string,
  ) {
    super(`${path} is corrupt: ${reason}`);
    this.name = 'VersionFileCorruptError';
  }
}

/** `<dbDir>/scm/current`. */
export function versionDir(dbDir: string): string {
  return join(dbDir, 'scm', 'current');
}

export function versionFilePath(dbDir: string): string {
  return join(versionDir(dbDir), VERSION_FILE_NAME);
}

export function newClusterId(): string {
  return `${CLUSTER_ID_PREFIX}${randomUUID()}`;
}

export function isValidClusterId(id: string): boolean {
  return id.startsWith(CLUSTER_ID_PREFIX) && UUID_RE.test(id.slice(CLUSTER_ID_PREFIX.length));
}

/** The Raft group uuid: the clusterID without its `CID-` prefix (DESIGN.md). */
export function raftGroupIdOf(clusterId: string): string {
  if (!isValidClusterId(clusterId)) throw new Error(`invalid clusterID ${JSON.stringify(clusterId)}: expected CID-<uuid>`);
  return clusterId.slice(CLUSTER_ID_PREFIX.length).toLowerCase();
}

/** `<ozone.scm.ratis.storage.dir>/<group id>`: where this cluster's Raft group keeps its files. */
export function raftGroupDir(config: Pick<ScmConfig, 'ratisDir'>, clusterId: string): string {
  return join(config.ratisDir, raftGroupIdOf(clusterId));
}

export function createVersionInfo(options: { clusterId?: string; scmUuid?: string; cTime?: number } = {}): ScmVersionInfo {
  const info: ScmVersionInfo = {
    nodeType: 'SCM',
    scmUuid: options.scmUuid ?? randomUUID(),
    clusterId: options.clusterId ?? newClusterId(),
    cTime: options.cTime ?? Date.now(),
    layoutVersion: CURRENT_LAYOUT_VERSION,
    extra: new Map(),
  };
  validateVersionInfo(info, '(new VERSION)');
  return info;
}

function validateVersionInfo(info: ScmVersionInfo, path: string): void {
  const fail = (reason: string): never => {
    throw new VersionFileCorruptError(path, reason);
  };
  if (info.nodeType !== 'SCM') fail(`nodeType is ${JSON.stringify(info.nodeType)}, expected SCM`);
  if (!UUID_RE.test(info.scmUuid)) fail(`scmUuid ${JSON.stringify(info.scmUuid)} is not a UUID`);
  if (!isValidClusterId(info.clusterId)) fail(`clusterID ${JSON.stringify(info.clusterId)} is not CID-<uuid>`);
  if (!Number.isSafeInteger(info.cTime) || info.cTime < 0) fail(`cTime ${info.cTime} is not a non-negative integer`);
  if (!Number.isSafeInteger(info.layoutVersion) || info.layoutVersion < 0) fail(`layoutVersion ${info.layoutVersion} is not a non-negative integer`);
  if (info.layoutVersion > CURRENT_LAYOUT_VERSION) {
    fail(`layoutVersion ${info.layoutVersion} is newer than this software understands (${CURRENT_LAYOUT_VERSION})`);
  }
}

function requiredField(props: Map<string, string>, name: string, path: string): string {
  const value = props.get(name);
  if (value === undefined || value.length === 0) throw new VersionFileCorruptError(path, `missing ${name}`);
  return value;
}

function integerField(props: Map<string, string>, name: string, path: string): number {
  const text = requiredField(props, name, path);
  if (!/^\d+$/.test(text)) throw new VersionFileCorruptError(path, `${name}=${JSON.stringify(text)} is not a non-negative integer`);
  return Number(text);
}

const KNOWN_FIELDS = new Set(['nodeType', 'scmUuid', 'clusterID', 'cTime', 'layoutVersion']);

export function parseVersionFile(text: string, path: string): ScmVersionInfo {
  let props: Map<string, string>;
  try {
    props = parseProperties(text, path);
  } catch (err) {
    if (err instanceof PropertiesFormatError) throw new VersionFileCorruptError(path, err.message);
    throw err;
  }
  const nodeType = requiredField(props, 'nodeType', path);
  if (nodeType !== 'SCM') throw new VersionFileCorruptError(path, `nodeType is ${JSON.stringify(nodeType)}, expected SCM`);
  const extra = new Map<string, string>();
  for (const [key, value] of props) if (!KNOWN_FIELDS.has(key)) extra.set(key, value);
  const info: ScmVersionInfo = {
    nodeType,
    scmUuid: requiredField(props, 'scmUuid', path),
    clusterId: requiredField(props, 'clusterID', path),
    cTime: integerField(props, 'cTime', path),
    layoutVersion: integerField(props, 'layoutVersion', path),
    extra,
  };
  validateVersionInfo(info, path);
  return info;
}

export function formatVersionFile(info: ScmVersionInfo, date: Date = new Date()): string {
  validateVersionInfo(info, '(VERSION being written)');
  return formatProperties(
    [
      ['nodeType', info.nodeType],
      ['scmUuid', info.scmUuid],
      ['clusterID', info.clusterId],
      ['cTime', String(info.cTime)],
      ['layoutVersion', String(info.layoutVersion)],
      ...info.extra,
    ],
    date,
  );
}

/** Reads and validates `<dbDir>/scm/current/VERSION`; VersionFileMissingError when absent. */
export function readVersionFile(dbDir: string): ScmVersionInfo {
  const path = versionFilePath(dbDir);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new VersionFileMissingError(path);
    throw err;
  }
  return parseVersionFile(text, path);
}

/** Null when the node has no VERSION yet; throws when it exists but is corrupt. */
export function readVersionFileIfExists(dbDir: string): ScmVersionInfo | null {
  try {
    return readVersionFile(dbDir);
  } catch (err) {
    if (err instanceof VersionFileMissingError) return null;
    throw err;
  }
}

/** Writes VERSION atomically and durably (tmp + fsync + rename + directory fsync). */
export async function writeVersionFile(dbDir: string, info: ScmVersionInfo): Promise<string> {
  mkdirSync(versionDir(dbDir), { recursive: true });
  const path = versionFilePath(dbDir);
  await writeFileAtomic(path, formatVersionFile(info), { mode: 0o644 });
  return path;
}

/** `scm start` and `scm bootstrap`: the clusterID this node holds must be the quorum's. */
export function assertSameCluster(local: ScmVersionInfo, remoteClusterId: string, remoteDescription: string): void {
  if (local.clusterId !== remoteClusterId) {
    throw new Error(
      `clusterID mismatch: this node's VERSION has ${local.clusterId} but ${remoteDescription} has ${remoteClusterId}; refusing to join a different cluster`,
    );
  }
}
