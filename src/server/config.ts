// The SCM node's configuration: Ozone's keys, read from ozone-site.xml and from environment variables
// `OZONE-SITE.XML_<key>=<value>` (as Ozone's container images do), turned into one typed ScmConfig.
// Precedence: overrides > environment > file > defaults. For per-node keys, the suffixed form
// `<key>.<serviceId>.<nodeId>` beats the plain key, at the same level or below (Ozone copies the
// suffixed value over the generic one after loading every source).
//
// Values may refer to other keys and to the environment as Hadoop's Configuration allows:
// `${ozone.metadata.dirs}/db`, `${env.HOME}`, `${env.DATA:-/data}`, `${env.DATA-/data}`. A reference
// reads the effective value of the other key (from whichever source wins, else its default) and is
// expanded recursively, wherever the referring value came from (file, environment or override).
// Where we differ from Hadoop, on purpose: Hadoop leaves an undefined reference in the value as
// literal text (so `${ozone.metadata.dirs}/db` with the key unset would create a directory named
// `${ozone.metadata.dirs}`), returns a self-referencing value unexpanded, and gives up with
// "Variable substitution depth too large" on a longer cycle. Here each of these is an error naming
// the key, where it was set and the reference. Java system properties (`${user.name}`) do not exist
// in this process: use `${env.USER}`. Only the values of keys this node knows are expanded, and the
// keys they refer to; other services' keys in a shared ozone-site.xml are left alone.
import { readFileSync } from 'node:fs';
import { hostname, networkInterfaces } from 'node:os';
import { join, resolve } from 'node:path';
import { parseHadoopXml } from './hadoop-xml.js';
import {
  ConfigValueError,
  findVariableReference,
  parseEnvironmentReference,
  parseBoolean,
  parseDurationMs,
  parseEnum,
  parseHost,
  parseHostPort,
  parseInteger,
  parseList,
  parsePort,
  parseSizeBytes,
} from './config-values.js';
import { HTTP_POLICIES, KEY, MIN_PEER_MAX_CONNECTIONS, checkValue, findKeySpec, isScmKey, type ConfigKeySpec } from './config-keys.js';
import { DEFAULT_MAX_RECEIVE_BYTES, minRequestBufferBytes } from './request-limits.js';
import { MIN_RAFT_FRAME_BYTES } from './raft-message-sizes.js';

export { KNOWN_CONFIG_KEYS, KEY, type ConfigKeySpec } from './config-keys.js';
export { ConfigValueError } from './config-values.js';

export const ENV_PREFIX = 'OZONE-SITE.XML_';
/** Used when ozone.scm.service.ids is not set: a single-node "quorum". */
export const DEFAULT_SERVICE_ID = 'scmservice';
export const DEFAULT_NODE_ID = 'scm1';

export interface ScmPeerConfig {
  readonly nodeId: string;
  readonly host: string;
  readonly clientPort: number;
  readonly ratisPort: number;
  readonly grpcPort: number;
  /** Bind host of the HTTP server (from ozone.scm.http-address). */
  readonly httpHost: string;
  readonly httpPort: number;
  /** `host:clientPort`, what clients dial and what leader hints carry. */
  readonly clientAddress: string;
  /** `host:ratisPort`, the Raft peer address (Ratis's RaftPeer address). */
  readonly ratisAddress: string;
  /** `host:grpcPort`, the InterSCM checkpoint service. */
  readonly grpcAddress: string;
  /** Bind host and port of the HTTPS server (ozone.scm.https-address), used when ozone.http.policy serves HTTPS. */
  readonly httpsHost: string;
  readonly httpsPort: number;
}

export interface RaftConfig {
  readonly segmentSizeBytes: number;
  readonly segmentPreallocatedSizeBytes: number;
  readonly appenderQueueNumElements: number;
  readonly appenderQueueByteLimitBytes: number;
  readonly logPurgeEnabled: boolean;
  readonly logPurgeGap: number;
  /** Purge past what live followers still need (ozone.scm.ha.ratis.log.purge.upto.snapshot.index). */
  readonly logPurgeUptoSnapshotIndex: boolean;
  readonly logCorruptionPolicy: 'EXCEPTION' | 'WARN_AND_RETURN';
  /** Bytes of recent log entries kept in memory (ozone.scm.ha.raft.server.log.segment.cache.size.max). */
  readonly logCacheBytes: number;
  /** A follower fdatasyncs its log on the event loop (ozone.scm.ha.raft.server.log.follower.sync.on.loop). */
  readonly followerSyncOnLoop: boolean;
  readonly snapshotThreshold: number;
  readonly snapshotCreationGap: number;
  /** Election timeouts are drawn from [min, max]; Ozone sets max = min + 200 ms. */
  readonly electionTimeoutMinMs: number;
  readonly electionTimeoutMaxMs: number;
  readonly firstElectionTimeoutMs: number;
  /** Leader heartbeat period: half the minimum election timeout, as Ratis does. */
  readonly heartbeatIntervalMs: number;
  readonly requestTimeoutMs: number;
  readonly retryCacheTimeoutMs: number;
  /** How long applied entries may stay unwritten in scm.db (ozone.scm.ha.dbtransactionbuffer.flush.interval); 0: written per apply. */
  readonly applyWriteDelayMs: number;
  readonly nodeFailureTimeoutMs: number;
  readonly leaderReadyCheckIntervalMs: number;
  readonly leaderReadyWaitTimeoutMs: number;
  readonly preVote: boolean;
}

/** PEM files of one TLS identity: whom it trusts, its certificate chain and its private key. */
export interface TlsFiles {
  /** hdds.x509.rootca.certificate.file: the cluster CA's certificates. */
  readonly caFile: string;
  readonly certFile: string;
  readonly keyFile: string;
}

export type HttpPolicy = (typeof HTTP_POLICIES)[number];

/**
 * How the node authenticates and authorizes (README, "Security"). `tls` null means plaintext: every
 * caller is anonymous and may do anything, which the node warns about at start.
 */
export interface SecurityConfig {
  /** ozone.security.enabled and hdds.grpc.tls.enabled: every port runs mutual TLS. */
  readonly enabled: boolean;
  /** The node's own identity on every port (server and client side); null in plaintext. */
  readonly tls: TlsFiles | null;
  /** The identity admin commands and other clients present; null when not configured. */
  readonly clientTls: TlsFiles | null;
  /** ozone.administrators: certificate subject names (CN), `*` for any certificate of the cluster CA. */
  readonly administrators: readonly string[];
  readonly httpPolicy: HttpPolicy;
  /** Absolute path of the JSON audit log of admin mutations. */
  readonly auditLogFile: string;
}

export interface ScmConfig {
  readonly serviceId: string;
  /** This node's id, or null when it cannot be told (several nodes, none chosen by ozone.scm.node.id). */
  readonly nodeId: string | null;
  readonly self: ScmPeerConfig | null;
  readonly primordialNodeId: string | null;
  /** Every configured member of the service, in the order of ozone.scm.nodes.<serviceId>. */
  readonly peers: readonly ScmPeerConfig[];
  readonly clientBindHost: string;
  /** Absolute; holds scm.db, scm/current/VERSION, db.checkpoints, snapshot. */
  readonly dbDir: string;
  /** Absolute; parent of the `<raft-group-uuid>/` directory. */
  readonly ratisDir: string;
  readonly raft: RaftConfig;
  readonly grpcDeadlineIntervalMs: number;
  /** ozone.scm.ha.grpc.checkpoint.min.read.bytes / .window: the slowest download the leader serves. */
  readonly checkpointMinRead: { readonly bytes: number; readonly windowMs: number };
  /** ozone.scm.ha.grpc.checkpoint.gzip.level: how hard the leader compresses a checkpoint stream. */
  readonly checkpointGzipLevel: number;
  /** ozone.scm.ha.grpc.checkpoint.busy.wait.timeout: how long a downloading follower spends on a busy leader (its refused calls and the waits it asks for). */
  readonly checkpointBusyWaitTimeoutMs: number;
  readonly containerListMaxCount: number;
  /** ozone.scm.handler.count.key: client calls admitted at once. */
  readonly clientMaxInFlight: number;
  /** ozone.scm.client.list.handler.count: list calls admitted at once. */
  readonly clientMaxListsInFlight: number;
  /** ozone.scm.client.request.buffer.size: request bytes held for client calls not yet handed to a handler. */
  readonly clientRequestBufferBytes: number;
  /** ozone.scm.client.request.read.timeout: how long a client call's request may take to arrive; 0 = none. */
  readonly clientRequestReadTimeoutMs: number;
  /** ozone.scm.client.max.connections: client connections served at once (0: no limit). */
  readonly clientMaxConnections: number;
  /** ozone.scm.peer.max.connections: connections each peer port serves at once (0: no limit). */
  readonly peerMaxConnections: number;
  /** ozone.scm.ha.consistency.check.interval; 0 = no periodic check. */
  readonly consistencyCheckIntervalMs: number;
  readonly sequenceIdBatchSize: number;
  /** ozone.scm.v8.heap.growing.percent: V8's old-generation growing factor minus 1, in percent; 0 = V8's own. */
  readonly v8HeapGrowingPercent: number;
  readonly security: SecurityConfig;
  /**
   * The effective value of every key that was set anywhere (not defaults), with `${…}` references
   * expanded for the keys this node knows.
   */
  readonly values: ReadonlyMap<string, string>;
}

export interface LoadConfigOptions {
  readonly siteXmlPath?: string;
  readonly env?: NodeJS.ProcessEnv;
  readonly overrides?: Readonly<Record<string, string>>;
}

interface SetValue {
  readonly value: string;
  /** Where it came from, for error messages. */
  readonly source: string;
}

/** Collects raw key/value pairs from every source, highest precedence last. */
function collectValues(options: LoadConfigOptions): Map<string, SetValue> {
  const values = new Map<string, SetValue>();
  if (options.siteXmlPath !== undefined) {
    let text: string;
    try {
      text = readFileSync(options.siteXmlPath, 'utf8');
    } catch (err) {
      throw new Error(`cannot read configuration file ${options.siteXmlPath}: ${(err as Error).message}`, { cause: err });
    }
    for (const property of parseHadoopXml(options.siteXmlPath, text)) {
      values.set(property.name, { value: property.value, source: `${options.siteXmlPath}:${property.line}` });
    }
  }
  for (const [name, value] of Object.entries(options.env ?? {})) {
    if (!name.startsWith(ENV_PREFIX) || value === undefined) continue;
    const configKey = name.slice(ENV_PREFIX.length);
    if (configKey.length === 0) throw new Error(`environment variable ${name} names no configuration key`);
    values.set(configKey, { value: value.trim(), source: `environment variable ${name}` });
  }
  for (const [name, value] of Object.entries(options.overrides ?? {})) {
    values.set(name, { value: value.trim(), source: 'override' });
  }
  return values;
}

/** Most substitutions in one value, and its longest expansion: a guard against runaway expansion. */
const MAX_SUBSTITUTIONS = 100;
const MAX_EXPANDED_LENGTH = 64 * 1024;

/** Expands `${key}` and `${env.NAME}` references (see the header comment for the rules). */
class VariableExpander {
  private readonly expanded = new Map<string, string>();

  constructor(
    private readonly values: ReadonlyMap<string, SetValue>,
    private readonly env: NodeJS.ProcessEnv,
  ) {}

  /** The expanded value of a set key. `chain` is the keys being expanded that led here. */
  expandKey(name: string, set: SetValue, chain: readonly string[] = []): string {
    const done = this.expanded.get(name);
    if (done !== undefined) return done;
    const value = this.expandText(set.value, [...chain, name], { key: name, set });
    this.expanded.set(name, value);
    return value;
  }

  private expandText(text: string, chain: readonly string[], owner: { key: string; set: SetValue }): string {
    let result = text;
    for (let substitutions = 0; ; substitutions++) {
      const ref = findVariableReference(result);
      if (ref === undefined) return result;
      if (substitutions >= MAX_SUBSTITUTIONS) {
        throw this.error(owner, chain, `needs more than ${MAX_SUBSTITUTIONS} variable substitutions`);
      }
      const value = this.resolve(ref.name, chain, owner);
      result = result.slice(0, ref.start) + value + result.slice(ref.end);
      if (result.length > MAX_EXPANDED_LENGTH) {
        throw this.error(owner, chain, `expands to more than ${MAX_EXPANDED_LENGTH} characters`);
      }
    }
  }

  private resolve(name: string, chain: readonly string[], owner: { key: string; set: SetValue }): string {
    if (chain.includes(name)) {
      const cycle = [...chain.slice(chain.indexOf(name)), name].map((k) => `\${${k}}`).join(' -> ');
      throw this.error(owner, chain, `is part of a cycle of references: ${cycle}`);
    }
    const envRef = parseEnvironmentReference(name);
    if (envRef !== undefined) {
      const value = this.env[envRef.variable];
      const fallback = envRef.fallback;
      const useFallback = fallback !== undefined && (value === undefined || (fallback.whenEmpty && value === ''));
      const text = useFallback ? fallback.text : value;
      if (text === undefined) {
        throw this.error(owner, chain, `refers to \${${name}}, but environment variable ${envRef.variable} is not set`);
      }
      // Hadoop rescans what it substituted, so an environment value may hold references too.
      return this.expandText(text, [...chain, name], owner);
    }
    const set = this.values.get(name);
    if (set !== undefined) return this.expandKey(name, set, chain);
    const spec = findKeySpec(name);
    if (spec !== undefined && spec.name === name && spec.default !== undefined) return spec.default;
    const hint = /^(user|java|os|file|line|path)\./.test(name)
      ? ' (Java system properties do not exist here: read the environment with ${env.NAME})'
      : '';
    throw this.error(owner, chain, `refers to \${${name}}, which is not set${hint}`);
  }

  private error(owner: { key: string; set: SetValue }, chain: readonly string[], reason: string): Error {
    const top = chain[0];
    const via = top !== undefined && top !== owner.key ? ` (needed to expand ${top})` : '';
    return new Error(`configuration key ${owner.key} (set in ${owner.set.source}) ${reason}${via}`);
  }
}

/**
 * The values with `${…}` references expanded, for every key this node knows (the only ones it
 * reads). A value that changed records its raw form in its source, for error messages.
 */
function expandVariables(values: ReadonlyMap<string, SetValue>, env: NodeJS.ProcessEnv): Map<string, SetValue> {
  const expander = new VariableExpander(values, env);
  const result = new Map<string, SetValue>();
  for (const [name, set] of values) {
    if (findKeySpec(name) === undefined) {
      result.set(name, set);
      continue;
    }
    const value = expander.expandKey(name, set);
    result.set(name, value === set.value ? set : { value, source: `${set.source}, expanded from ${JSON.stringify(set.value)}` });
  }
  return result;
}

function withSource<T>(set: SetValue | undefined, parse: () => T): T {
  try {
    return parse();
  } catch (err) {
    if (err instanceof ConfigValueError && set !== undefined) {
      throw new ConfigValueError(err.key, err.value, `${err.reason} (set in ${set.source})`);
    }
    throw err;
  }
}

/** Typed access to the collected values with defaults, suffix resolution and sourced errors. */
class ConfigReader {
  constructor(private readonly values: ReadonlyMap<string, SetValue>) {}

  private spec(name: string): ConfigKeySpec {
    const spec = findKeySpec(name);
    if (spec === undefined) throw new Error(`internal: ${name} is not a known configuration key`);
    return spec;
  }

  /** The raw value of `name` (its suffixed form first when a node is given) and the key it came from. */
  raw(name: string, node?: { serviceId: string; nodeId: string }): { key: string; set: SetValue | undefined; value: string | undefined } {
    if (node !== undefined && this.spec(name).perNode) {
      const suffixed = `${name}.${node.serviceId}.${node.nodeId}`;
      const set = this.values.get(suffixed);
      if (set !== undefined) return { key: suffixed, set, value: set.value };
    }
    const set = this.values.get(name);
    return { key: name, set, value: set?.value ?? this.spec(name).default };
  }

  get<T>(name: string, parse: (key: string, value: string) => T, node?: { serviceId: string; nodeId: string }): T | undefined {
    const { key, set, value } = this.raw(name, node);
    if (value === undefined) return undefined;
    return withSource(set, () => parse(key, value));
  }

  required<T>(name: string, parse: (key: string, value: string) => T, node?: { serviceId: string; nodeId: string }): T {
    const result = this.get(name, parse, node);
    if (result === undefined) throw new Error(`configuration key ${name} must be set`);
    return result;
  }

  durationMs(name: string): number {
    return this.required(name, (key, value) => parseDurationMs(key, value, 'ms'));
  }

  /** An integer key within its spec's range; `refuse` may name what else is wrong with a value. */
  count(name: string, refuse?: (n: number) => string | undefined): number {
    const spec = this.spec(name);
    if (spec.type.kind !== 'integer') throw new Error(`internal: ${name} is not an integer key`);
    const { min, max } = spec.type;
    return this.required(name, (key, value) => {
      const n = parseInteger(key, value, min, max);
      const why = refuse?.(n);
      if (why !== undefined) throw new ConfigValueError(key, value, why);
      return n;
    });
  }
}

/** Rejects unknown `ozone.scm.` keys and checks the form of every known value. */
function checkAllEntries(values: ReadonlyMap<string, SetValue>): void {
  for (const [name, set] of values) {
    const spec = findKeySpec(name);
    if (spec === undefined) {
      if (isScmKey(name)) throw new Error(`unknown configuration key ${name} (set in ${set.source})`);
      continue;
    }
    withSource(set, () => checkValue(name, set.value, spec.type));
  }
}

function singleDirectory(reader: ConfigReader, name: string, node: { serviceId: string; nodeId: string }): string | undefined {
  return reader.get(
    name,
    (key, value) => {
      const dirs = parseList(value);
      if (dirs.length !== 1) throw new ConfigValueError(key, value, 'exactly one directory is supported');
      return resolve(dirs[0] ?? '');
    },
    node,
  );
}

/** Two aliases for one setting: either may be set, but not to different values. */
function aliased<T>(reader: ConfigReader, primary: string, alias: string, parse: (key: string, value: string) => T, same: (a: T, b: T) => boolean, node?: { serviceId: string; nodeId: string }): T | undefined {
  const a = reader.get(primary, parse, node);
  const b = reader.get(alias, parse, node);
  if (a !== undefined && b !== undefined && !same(a, b)) {
    throw new Error(`configuration keys ${primary} and ${alias} are aliases but are set to different values`);
  }
  return b ?? a;
}

function localHostNames(): Set<string> {
  const names = new Set<string>([hostname(), 'localhost']);
  for (const addresses of Object.values(networkInterfaces())) {
    for (const address of addresses ?? []) names.add(address.address);
  }
  return names;
}

function resolveServiceId(reader: ConfigReader): string | null {
  const ids = reader.get(KEY.serviceIds, (_key, value) => parseList(value));
  if (ids === undefined) return null;
  if (ids.length === 1) return ids[0] ?? null;
  const chosen = reader.get(KEY.defaultServiceId, (_key, value) => value.trim());
  if (chosen === undefined) {
    throw new Error(`${KEY.serviceIds} lists several services (${ids.join(', ')}): set ${KEY.defaultServiceId} to choose one`);
  }
  if (!ids.includes(chosen)) {
    throw new Error(`${KEY.defaultServiceId}=${chosen} is not one of ${KEY.serviceIds} (${ids.join(', ')})`);
  }
  return chosen;
}

function loadPeer(reader: ConfigReader, serviceId: string, nodeId: string, hostOverride?: string): ScmPeerConfig {
  const node = { serviceId, nodeId };
  const host =
    hostOverride ??
    reader.get(`${KEY.address}.${serviceId}.${nodeId}`, parseHost) ??
    (() => {
      throw new Error(`configuration key ${KEY.address}.${serviceId}.${nodeId} must be set (the host of SCM node ${nodeId})`);
    })();
  const clientPort = reader.required(KEY.clientPort, parsePort, node);
  const ratisPort = reader.required(KEY.ratisPort, parsePort, node);
  const grpcPort = reader.required(KEY.grpcPort, parsePort, node);
  const http = reader.required(KEY.httpAddress, (key, value) => parseHostPort(key, value), node);
  const https = reader.required(KEY.httpsAddress, (key, value) => parseHostPort(key, value), node);
  return {
    nodeId,
    host,
    clientPort,
    ratisPort,
    grpcPort,
    httpHost: http.host,
    httpPort: http.port,
    clientAddress: `${host}:${clientPort}`,
    ratisAddress: `${host}:${ratisPort}`,
    grpcAddress: `${host}:${grpcPort}`,
    httpsHost: https.host,
    httpsPort: https.port,
  };
}

/** Two members listening on the same host and port cannot both run; say which keys collide. */
function checkPortCollisions(peers: readonly ScmPeerConfig[]): void {
  const seen = new Map<string, string>();
  for (const peer of peers) {
    const endpoints: [string, number][] = [
      [KEY.clientPort, peer.clientPort],
      [KEY.ratisPort, peer.ratisPort],
      [KEY.grpcPort, peer.grpcPort],
      [KEY.httpAddress, peer.httpPort],
    ];
    for (const [name, port] of endpoints) {
      const endpoint = `${peer.host}:${port}`;
      const previous = seen.get(endpoint);
      const label = `${name} of node ${peer.nodeId}`;
      if (previous !== undefined) throw new Error(`port collision on ${endpoint}: ${previous} and ${label}`);
      seen.set(endpoint, label);
    }
  }
}

function loadRaftConfig(reader: ConfigReader): RaftConfig {
  const electionTimeoutMinMs = reader.durationMs(KEY.leaderElectionTimeout);
  if (electionTimeoutMinMs < 10) {
    throw new ConfigValueError(KEY.leaderElectionTimeout, `${electionTimeoutMinMs}ms`, 'must be at least 10ms');
  }
  const ms = (key: string, value: string): number => parseDurationMs(key, value, 'ms');
  const requestTimeoutMs = aliased(reader, KEY.requestTimeout, KEY.serverRequestTimeout, ms, (a, b) => a === b) ?? 30_000;
  if (requestTimeoutMs <= 1000) {
    throw new ConfigValueError(KEY.requestTimeout, `${requestTimeoutMs}ms`, 'the Raft request timeout must exceed 1000ms (as Ozone requires)');
  }
  // A timer past Node's range (2^31 - 1 ms) fires after 1 ms; a day is past any useful interval
  // (4,096 unwritten entries force a write long before).
  const applyWriteDelayMs = reader.durationMs(KEY.dbTransactionBufferFlushInterval);
  if (applyWriteDelayMs > 86_400_000) {
    throw new ConfigValueError(KEY.dbTransactionBufferFlushInterval, `${applyWriteDelayMs}ms`, 'must be at most 1d');
  }
  const segmentSizeBytes = reader.required(KEY.segmentSize, parseSizeBytes);
  if (segmentSizeBytes < 1024) throw new ConfigValueError(KEY.segmentSize, String(segmentSizeBytes), 'must be at least 1KB');
  return {
    segmentSizeBytes,
    segmentPreallocatedSizeBytes: reader.required(KEY.segmentPreallocatedSize, parseSizeBytes),
    appenderQueueNumElements: reader.count(KEY.appenderQueueNumElements),
    appenderQueueByteLimitBytes: loadAppenderByteLimit(reader),
    logPurgeEnabled: reader.required(KEY.logPurgeEnabled, parseBoolean),
    logPurgeGap: reader.count(KEY.logPurgeGap),
    logPurgeUptoSnapshotIndex: reader.required(KEY.logPurgeUptoSnapshotIndex, parseBoolean),
    logCorruptionPolicy: reader.required(KEY.logCorruptionPolicy, (key, value) => parseEnum(key, value, ['EXCEPTION', 'WARN_AND_RETURN'] as const)),
    logCacheBytes: reader.required(KEY.logCacheSize, parseSizeBytes),
    followerSyncOnLoop: reader.required(KEY.followerSyncOnLoop, parseBoolean),
    snapshotThreshold: reader.count(KEY.snapshotThreshold),
    snapshotCreationGap: reader.count(KEY.snapshotCreationGap),
    electionTimeoutMinMs,
    electionTimeoutMaxMs: electionTimeoutMinMs + 200,
    firstElectionTimeoutMs: reader.get(KEY.firstElectionTimeout, ms) ?? electionTimeoutMinMs,
    heartbeatIntervalMs: Math.max(1, Math.floor(electionTimeoutMinMs / 2)),
    requestTimeoutMs,
    retryCacheTimeoutMs: reader.durationMs(KEY.retryCacheTimeout),
    applyWriteDelayMs,
    nodeFailureTimeoutMs: reader.durationMs(KEY.nodeFailureTimeout),
    leaderReadyCheckIntervalMs: reader.durationMs(KEY.leaderReadyCheckInterval),
    leaderReadyWaitTimeoutMs: reader.durationMs(KEY.leaderReadyWaitTimeout),
    preVote: reader.required(KEY.preVote, parseBoolean),
  };
}

/** A path key's value, resolved against the working directory. */
function pathValue(reader: ConfigReader, name: string, node?: { serviceId: string; nodeId: string }): string | undefined {
  return reader.get(name, (_key, value) => resolve(value.trim()), node);
}

/**
 * The security settings. Ozone switches TLS on only when ozone.security.enabled and
 * hdds.grpc.tls.enabled are both true and ignores either alone; here either alone is an error, so
 * a node never runs in plaintext while its operator believes it secured.
 */
function loadSecurity(reader: ConfigReader, node: { serviceId: string; nodeId: string }, dbDir: string, httpPolicy: HttpPolicy): SecurityConfig {
  const security = reader.required(KEY.securityEnabled, parseBoolean);
  const grpcTls = reader.required(KEY.grpcTlsEnabled, parseBoolean);
  if (security && !grpcTls) {
    throw new Error(
      `${KEY.securityEnabled}=true but ${KEY.grpcTlsEnabled} is not true: this SCM authenticates callers only by TLS certificates; set ${KEY.grpcTlsEnabled}=true (with ${KEY.caCertificateFile}, ${KEY.certificateFile} and ${KEY.privateKeyFile}), or turn security off`,
    );
  }
  if (grpcTls && !security) {
    throw new Error(`${KEY.grpcTlsEnabled}=true has no effect without ${KEY.securityEnabled}=true (as in Ozone); set both to turn on mutual TLS`);
  }
  const caFile = pathValue(reader, KEY.caCertificateFile, node);
  let tls: TlsFiles | null = null;
  if (security) {
    const certFile = pathValue(reader, KEY.certificateFile, node);
    const keyFile = pathValue(reader, KEY.privateKeyFile, node);
    const missing = [
      [KEY.caCertificateFile, caFile],
      [KEY.certificateFile, certFile],
      [KEY.privateKeyFile, keyFile],
    ].filter(([, value]) => value === undefined).map(([name]) => name);
    // A client configuration (no node id) needs only the CA and the client identity.
    if (missing.length > 0 && node.nodeId !== '') {
      throw new Error(`TLS is on (${KEY.securityEnabled}, ${KEY.grpcTlsEnabled}) but ${missing.join(', ')} ${missing.length === 1 ? 'is' : 'are'} not set (for node ${node.nodeId}: the plain key or its .${node.serviceId}.${node.nodeId} form)`);
    }
    if (caFile !== undefined && certFile !== undefined && keyFile !== undefined) tls = { caFile, certFile, keyFile };
  }
  let clientTls: TlsFiles | null = null;
  const clientCert = pathValue(reader, KEY.clientCertificateFile);
  const clientKey = pathValue(reader, KEY.clientPrivateKeyFile);
  if ((clientCert === undefined) !== (clientKey === undefined)) {
    throw new Error(`${KEY.clientCertificateFile} and ${KEY.clientPrivateKeyFile} go together: set both or neither`);
  }
  if (security && clientCert !== undefined && clientKey !== undefined) {
    if (caFile === undefined) throw new Error(`${KEY.clientCertificateFile} is set but ${KEY.caCertificateFile} is not: a client must know the cluster CA to trust the SCMs`);
    clientTls = { caFile, certFile: clientCert, keyFile: clientKey };
  }
  if (httpPolicy !== 'HTTP_ONLY' && !security) {
    throw new Error(`${KEY.httpPolicy}=${httpPolicy} needs TLS (${KEY.securityEnabled} and ${KEY.grpcTlsEnabled}): HTTPS serves the node's own certificate`);
  }
  const administrators = reader.get(KEY.administrators, (_key, value) => parseList(value)) ?? [];
  return {
    enabled: security,
    tls,
    clientTls,
    administrators,
    httpPolicy,
    auditLogFile: pathValue(reader, KEY.auditLogFile, node) ?? join(dbDir, 'scm-audit.log'),
  };
}

/**
 * Loads and validates the configuration. Throws an Error naming the key (and where it was set) for
 * an unknown `ozone.scm.` key, a malformed value, or an inconsistent topology.
 */
export function loadConfig(options: LoadConfigOptions = {}): ScmConfig {
  const values = expandVariables(collectValues(options), options.env ?? {});
  checkAllEntries(values);
  const reader = new ConfigReader(values);

  const configuredServiceId = resolveServiceId(reader);
  const serviceId = configuredServiceId ?? DEFAULT_SERVICE_ID;
  const explicitNodeId = reader.get(KEY.nodeId, (_key, value) => value.trim()) ?? null;
  let peers: ScmPeerConfig[];
  if (configuredServiceId === null) {
    // No HA topology configured: one node on this host.
    peers = [loadPeer(reader, serviceId, explicitNodeId ?? DEFAULT_NODE_ID, '127.0.0.1')];
  } else {
    const nodesKey = `${KEY.nodes}.${serviceId}`;
    const nodeIds = reader.get(nodesKey, (_key, value) => parseList(value));
    if (nodeIds === undefined) throw new Error(`configuration key ${nodesKey} must be set (the node ids of service ${serviceId})`);
    const duplicate = nodeIds.find((id, i) => nodeIds.indexOf(id) !== i);
    if (duplicate !== undefined) throw new Error(`configuration key ${nodesKey} lists node ${duplicate} twice`);
    peers = nodeIds.map((nodeId) => loadPeer(reader, serviceId, nodeId));
  }
  checkPortCollisions(peers);

  let nodeId: string | null;
  if (explicitNodeId !== null) {
    if (!peers.some((peer) => peer.nodeId === explicitNodeId)) {
      throw new Error(`${KEY.nodeId}=${explicitNodeId} is not one of the nodes of service ${serviceId} (${peers.map((p) => p.nodeId).join(', ')})`);
    }
    nodeId = explicitNodeId;
  } else if (peers.length === 1) {
    nodeId = peers[0]?.nodeId ?? null;
  } else {
    // Ozone picks the member whose address is local; ambiguous when they share a host.
    const local = localHostNames();
    const matches = peers.filter((peer) => local.has(peer.host));
    nodeId = matches.length === 1 ? (matches[0]?.nodeId ?? null) : null;
  }
  const self = peers.find((peer) => peer.nodeId === nodeId) ?? null;
  const node = { serviceId, nodeId: nodeId ?? '' };

  const primordialNodeId = reader.get(KEY.primordialNodeId, (_key, value) => value.trim()) ?? null;
  if (primordialNodeId !== null && !peers.some((peer) => peer.nodeId === primordialNodeId)) {
    throw new Error(`${KEY.primordialNodeId}=${primordialNodeId} is not one of the nodes of service ${serviceId}`);
  }

  const metadataDir = singleDirectory(reader, KEY.metadataDirs, node);
  const dbDir = singleDirectory(reader, KEY.dbDirs, node) ?? metadataDir;
  if (dbDir === undefined) {
    throw new Error(`neither ${KEY.dbDirs} nor ${KEY.metadataDirs} is set: SCM needs a directory for scm.db`);
  }
  const ratisDir =
    aliased(
      reader,
      KEY.haRatisStorageDir,
      KEY.ratisStorageDir,
      (key, value) => {
        const dirs = parseList(value);
        if (dirs.length !== 1) throw new ConfigValueError(key, value, 'exactly one directory is supported');
        return resolve(dirs[0] ?? '');
      },
      (a, b) => a === b,
      node,
    ) ?? (metadataDir !== undefined ? join(metadataDir, 'scm-ha') : undefined);
  if (ratisDir === undefined) {
    throw new Error(`neither ${KEY.haRatisStorageDir} (or ${KEY.ratisStorageDir}) nor ${KEY.metadataDirs} is set: SCM needs a directory for the Raft log`);
  }

  const effective = new Map<string, string>();
  for (const [name, set] of values) effective.set(name, set.value);
  return {
    serviceId,
    nodeId,
    self,
    primordialNodeId,
    peers,
    clientBindHost: reader.required(KEY.clientBindHost, parseHost, node),
    dbDir,
    ratisDir,
    raft: loadRaftConfig(reader),
    grpcDeadlineIntervalMs: reader.durationMs(KEY.grpcDeadlineInterval),
    checkpointMinRead: loadCheckpointMinRead(reader),
    checkpointGzipLevel: reader.count(KEY.checkpointGzipLevel),
    checkpointBusyWaitTimeoutMs: reader.durationMs(KEY.checkpointBusyWaitTimeout),
    containerListMaxCount: reader.count(KEY.containerListMaxCount),
    clientMaxInFlight: reader.count(KEY.handlerCount),
    clientMaxListsInFlight: reader.count(KEY.clientListHandlerCount),
    clientRequestBufferBytes: loadClientRequestBuffer(reader),
    clientRequestReadTimeoutMs: reader.durationMs(KEY.clientRequestReadTimeout),
    clientMaxConnections: reader.count(KEY.clientMaxConnections),
    peerMaxConnections: loadPeerMaxConnections(reader),
    consistencyCheckIntervalMs: reader.durationMs(KEY.consistencyCheckInterval),
    sequenceIdBatchSize: reader.count(KEY.sequenceIdBatchSize),
    v8HeapGrowingPercent: reader.count(KEY.v8HeapGrowingPercent),
    security: loadSecurity(reader, node, dbDir, reader.required(KEY.httpPolicy, (key, value) => parseEnum(key, value, HTTP_POLICIES))),
    values: effective,
  };
}

function loadCheckpointMinRead(reader: ConfigReader): { bytes: number; windowMs: number } {
  const windowMs = reader.durationMs(KEY.checkpointMinReadWindow);
  if (windowMs <= 0) throw new ConfigValueError(KEY.checkpointMinReadWindow, `${windowMs}ms`, 'must be positive');
  return { bytes: reader.required(KEY.checkpointMinReadBytes, parseSizeBytes), windowMs };
}

/** At least the worst single call at the client port's receive limit (grpc-js' default, which the node keeps). */
function loadClientRequestBuffer(reader: ConfigReader): number {
  const min = minRequestBufferBytes(DEFAULT_MAX_RECEIVE_BYTES);
  return reader.required(KEY.clientRequestBuffer, (key, value) => {
    const bytes = parseSizeBytes(key, value);
    if (bytes < min) {
      throw new ConfigValueError(
        key,
        value,
        `must be at least ${min} bytes (8MB + 80KB: a compressed request of the largest size, 4MB, what it inflates to, as much again, and its inflater, 80KB, are held together), so that the largest call always fits`,
      );
    }
    return bytes;
  });
}

/** At least MIN_RAFT_FRAME_BYTES: it caps every Raft frame, and so every entry (raft-message-sizes.ts). */
function loadAppenderByteLimit(reader: ConfigReader): number {
  return reader.required(KEY.appenderQueueByteLimit, (key, value) => {
    const bytes = parseSizeBytes(key, value);
    if (bytes < MIN_RAFT_FRAME_BYTES) {
      throw new ConfigValueError(key, value, `must be at least ${MIN_RAFT_FRAME_BYTES} bytes (64KB): it caps every Raft message a peer accepts, and one entry may hold a quarter of it`);
    }
    return bytes;
  });
}

function loadPeerMaxConnections(reader: ConfigReader): number {
  return reader.count(KEY.peerMaxConnections, (limit) =>
    limit !== 0 && limit < MIN_PEER_MAX_CONNECTIONS
      ? `must be 0 (no limit) or at least ${MIN_PEER_MAX_CONNECTIONS}: one address may hold a quarter of it, and the members of a group on one machine all connect from one address`
      : undefined,
  );
}

/** This node's own member entry; a clear error when the configuration does not say which node it is. */
export function requireSelf(config: ScmConfig): ScmPeerConfig {
  if (config.self !== null) return config.self;
  throw new Error(
    `cannot tell which SCM node this is among ${config.peers.map((p) => `${p.nodeId} (${p.host})`).join(', ')}: set ${KEY.nodeId}`,
  );
}
