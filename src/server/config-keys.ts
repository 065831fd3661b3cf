// The configuration keys an SCM node understands, with Ozone's names and defaults
// (ScmConfigKeys / SCMHAConfiguration). Keys marked `perNode` are also accepted in Ozone's suffixed
// form `<key>.<serviceId>.<nodeId>` (ConfUtils.addKeySuffixes), which is how several SCMs share one
// ozone-site.xml, or one host. A key under `ozone.scm.` or `hdds.grpc.tls.` that is not listed here
// is a configuration error (a mistyped TLS switch must not leave a node silently in plaintext);
// other namespaces (ozone.om.*, other hdds.* keys, …) belong to other services and are ignored.
import {
  ConfigValueError,
  parseBoolean,
  parseDurationMs,
  parseEnum,
  parseHost,
  parseHostPort,
  parseInteger,
  parseList,
  parsePort,
  parseSizeBytes,
  type DurationUnit,
} from './config-values.js';

export type ConfigValueType =
  | { readonly kind: 'duration'; readonly unit: DurationUnit }
  | { readonly kind: 'size' }
  | { readonly kind: 'integer'; readonly min: number; readonly max: number }
  | { readonly kind: 'boolean' }
  | { readonly kind: 'enum'; readonly choices: readonly string[] }
  | { readonly kind: 'port' }
  | { readonly kind: 'host' }
  | { readonly kind: 'host-port' }
  | { readonly kind: 'path' }
  | { readonly kind: 'id' }
  | { readonly kind: 'id-list' }
  | { readonly kind: 'text' };

export interface ConfigKeySpec {
  /** The key as Ozone documents it; `<serviceId>` / `<nodeId>` mark required suffixes. */
  readonly name: string;
  /** Matches this key and every accepted suffixed form. */
  readonly pattern: RegExp;
  readonly type: ConfigValueType;
  /** Default in Hadoop notation; undefined when the key has no default. */
  readonly default: string | undefined;
  /** Also accepted as `<name>.<serviceId>.<nodeId>`, which wins for that node. */
  readonly perNode: boolean;
  /**
   * False for Ozone keys that are accepted so an existing ozone-site.xml loads, but have no effect
   * on this implementation (its value is still checked for form).
   */
  readonly used: boolean;
  readonly description: string;
}

/** Service and node ids: what may appear in a suffixed key. */
export const ID_PATTERN_SOURCE = '[A-Za-z0-9_-]+';
const ID_RE = new RegExp(`^${ID_PATTERN_SOURCE}$`);

const escapeKey = (key: string): string => key.replace(/[.*+?^${}()|[\]\\-]/g, '\\$&');

interface KeyOptions {
  readonly default?: string;
  readonly perNode?: boolean;
  readonly used?: boolean;
}

function key(name: string, type: ConfigValueType, description: string, options: KeyOptions = {}): ConfigKeySpec {
  const perNode = options.perNode ?? false;
  const suffix = perNode ? `(?:\\.${ID_PATTERN_SOURCE}\\.${ID_PATTERN_SOURCE})?` : '';
  return {
    name,
    pattern: new RegExp(`^${escapeKey(name)}${suffix}$`),
    type,
    default: options.default,
    perNode,
    used: options.used ?? true,
    description,
  };
}

/** A key whose name itself carries the service (and node) id, e.g. `ozone.scm.nodes.<serviceId>`. */
function templatedKey(name: string, type: ConfigValueType, description: string): ConfigKeySpec {
  const source = escapeKey(name)
    .replace(escapeKey('<serviceId>'), ID_PATTERN_SOURCE)
    .replace(escapeKey('<nodeId>'), ID_PATTERN_SOURCE);
  return { name, pattern: new RegExp(`^${source}$`), type, default: undefined, perNode: false, used: true, description };
}

const ms: ConfigValueType = { kind: 'duration', unit: 'ms' };
const size: ConfigValueType = { kind: 'size' };
const bool: ConfigValueType = { kind: 'boolean' };
const count = (min: number, max: number): ConfigValueType => ({ kind: 'integer', min, max });

export const KEY = {
  serviceIds: 'ozone.scm.service.ids',
  defaultServiceId: 'ozone.scm.default.service.id',
  nodes: 'ozone.scm.nodes',
  address: 'ozone.scm.address',
  nodeId: 'ozone.scm.node.id',
  primordialNodeId: 'ozone.scm.primordial.node.id',
  clientPort: 'ozone.scm.client.port',
  clientBindHost: 'ozone.scm.client.bind.host',
  ratisPort: 'ozone.scm.ratis.port',
  grpcPort: 'ozone.scm.grpc.port',
  httpAddress: 'ozone.scm.http-address',
  dbDirs: 'ozone.scm.db.dirs',
  ratisStorageDir: 'ozone.scm.ratis.storage.dir',
  haRatisStorageDir: 'ozone.scm.ha.ratis.storage.dir',
  metadataDirs: 'ozone.metadata.dirs',
  rpcType: 'ozone.scm.ha.ratis.rpc.type',
  segmentSize: 'ozone.scm.ha.ratis.segment.size',
  segmentPreallocatedSize: 'ozone.scm.ha.ratis.segment.preallocated.size',
  appenderQueueNumElements: 'ozone.scm.ha.ratis.log.appender.queue.num-elements',
  appenderQueueByteLimit: 'ozone.scm.ha.ratis.log.appender.queue.byte-limit',
  logPurgeEnabled: 'ozone.scm.ha.ratis.log.purge.enabled',
  logPurgeGap: 'ozone.scm.ha.ratis.log.purge.gap',
  logPurgeUptoSnapshotIndex: 'ozone.scm.ha.ratis.log.purge.upto.snapshot.index',
  logCorruptionPolicy: 'ozone.scm.ha.ratis.log.corruption.policy',
  logCacheSize: 'ozone.scm.ha.raft.server.log.segment.cache.size.max',
  followerSyncOnLoop: 'ozone.scm.ha.raft.server.log.follower.sync.on.loop',
  snapshotThreshold: 'ozone.scm.ha.ratis.snapshot.threshold',
  snapshotCreationGap: 'ozone.scm.ha.ratis.server.snapshot.creation.gap',
  leaderElectionTimeout: 'ozone.scm.ha.ratis.leader.election.timeout',
  firstElectionTimeout: 'ozone.scm.ha.raft.server.rpc.first-election.timeout',
  requestTimeout: 'ozone.scm.ha.ratis.request.timeout',
  serverRequestTimeout: 'ozone.scm.ha.ratis.server.request.timeout',
  retryCacheTimeout: 'ozone.scm.ha.ratis.server.retry.cache.timeout',
  nodeFailureTimeout: 'ozone.scm.ha.ratis.server.failure.timeout.duration',
  leaderReadyCheckInterval: 'ozone.scm.ha.ratis.leader.ready.check.interval',
  leaderReadyWaitTimeout: 'ozone.scm.ha.ratis.leader.ready.wait.timeout',
  preVote: 'ozone.scm.ha.ratis.server.leaderelection.pre-vote',
  grpcDeadlineInterval: 'ozone.scm.ha.grpc.deadline.interval',
  checkpointMinReadBytes: 'ozone.scm.ha.grpc.checkpoint.min.read.bytes',
  checkpointMinReadWindow: 'ozone.scm.ha.grpc.checkpoint.min.read.window',
  checkpointGzipLevel: 'ozone.scm.ha.grpc.checkpoint.gzip.level',
  checkpointBusyWaitTimeout: 'ozone.scm.ha.grpc.checkpoint.busy.wait.timeout',
  dbTransactionBufferFlushInterval: 'ozone.scm.ha.dbtransactionbuffer.flush.interval',
  containerListMaxCount: 'ozone.scm.container.list.max.count',
  handlerCount: 'ozone.scm.handler.count.key',
  clientListHandlerCount: 'ozone.scm.client.list.handler.count',
  clientRequestBuffer: 'ozone.scm.client.request.buffer.size',
  clientRequestReadTimeout: 'ozone.scm.client.request.read.timeout',
  clientMaxConnections: 'ozone.scm.client.max.connections',
  peerMaxConnections: 'ozone.scm.peer.max.connections',
  consistencyCheckInterval: 'ozone.scm.ha.consistency.check.interval',
  sequenceIdBatchSize: 'ozone.scm.sequence.id.batch.size',
  v8HeapGrowingPercent: 'ozone.scm.v8.heap.growing.percent',
  // Security: Ozone's switches and administrators list, our certificate files (README, "Security").
  securityEnabled: 'ozone.security.enabled',
  grpcTlsEnabled: 'hdds.grpc.tls.enabled',
  grpcTlsProvider: 'hdds.grpc.tls.provider',
  caCertificateFile: 'hdds.x509.rootca.certificate.file',
  certificateFile: 'ozone.scm.x509.certificate.file',
  privateKeyFile: 'ozone.scm.x509.private.key.file',
  clientCertificateFile: 'ozone.scm.client.x509.certificate.file',
  clientPrivateKeyFile: 'ozone.scm.client.x509.private.key.file',
  administrators: 'ozone.administrators',
  httpPolicy: 'ozone.http.policy',
  httpsAddress: 'ozone.scm.https-address',
  auditLogFile: 'ozone.scm.audit.log.file',
} as const;

/**
 * The least ozone.scm.peer.max.connections other than 0: below it a member could be kept out, as
 * every member of a group on one machine connects from one address, which may hold a quarter of
 * the limit (8 here: the Raft streams of a 5-node group, with room for reconnects).
 */
export const MIN_PEER_MAX_CONNECTIONS = 32;

export const DEFAULT_CLIENT_PORT = 9860;
export const DEFAULT_RATIS_PORT = 9894;
export const DEFAULT_GRPC_PORT = 9895;
export const DEFAULT_HTTP_PORT = 9876;
export const DEFAULT_HTTPS_PORT = 9877;
export const HTTP_POLICIES = ['HTTP_ONLY', 'HTTPS_ONLY', 'HTTP_AND_HTTPS'] as const;

export const KNOWN_CONFIG_KEYS: readonly ConfigKeySpec[] = [
  // Topology: which quorum, which members, which one am I.
  key(KEY.serviceIds, { kind: 'id-list' }, 'Comma-separated SCM service ids (one quorum per id).'),
  key(KEY.defaultServiceId, { kind: 'id' }, 'The service id to use when ozone.scm.service.ids lists several.'),
  templatedKey(`${KEY.nodes}.<serviceId>`, { kind: 'id-list' }, 'Comma-separated node ids of the SCMs in a service.'),
  templatedKey(`${KEY.address}.<serviceId>.<nodeId>`, { kind: 'host' }, 'Host name or IP of one SCM node.'),
  key(KEY.nodeId, { kind: 'id' }, 'The node id of this SCM; needed when several SCMs share a host.'),
  key(KEY.primordialNodeId, { kind: 'id' }, 'The node that runs `scm init`; the others bootstrap.'),
  key('ozone.scm.names', { kind: 'text' }, 'Non-HA list of SCM hosts (accepted, unused: use the HA keys).', { used: false }),
  key('ozone.scm.skip.bootstrap.validation', bool, 'Skip the clusterId check in bootstrap (accepted, unused).', { default: 'false', used: false }),
  // Ports and addresses, each also per node.
  key(KEY.clientPort, { kind: 'port' }, 'Client gRPC port (StorageContainerLocationProtocol).', { default: String(DEFAULT_CLIENT_PORT), perNode: true }),
  key(KEY.clientBindHost, { kind: 'host' }, 'Address the client port binds to.', { default: '0.0.0.0', perNode: true }),
  key(KEY.ratisPort, { kind: 'port' }, 'Raft port between SCMs.', { default: String(DEFAULT_RATIS_PORT), perNode: true }),
  key(KEY.grpcPort, { kind: 'port' }, 'InterSCM gRPC port (checkpoint download).', { default: String(DEFAULT_GRPC_PORT), perNode: true }),
  key(KEY.httpAddress, { kind: 'host-port' }, 'HTTP address (metrics, health).', { default: `0.0.0.0:${DEFAULT_HTTP_PORT}`, perNode: true }),
  key('ozone.scm.datanode.port', { kind: 'port' }, 'Datanode protocol port (accepted, unused).', { default: '9861', perNode: true, used: false }),
  key('ozone.scm.block.client.port', { kind: 'port' }, 'Block client port (accepted, unused).', { default: '9863', perNode: true, used: false }),
  key('ozone.scm.security.service.port', { kind: 'port' }, 'Security service port (accepted, unused).', { default: '9961', perNode: true, used: false }),
  key('ozone.scm.client.address', { kind: 'text' }, 'Non-HA client address (accepted, unused: use the per-node keys).', { perNode: true, used: false }),
  key('ozone.scm.block.client.address', { kind: 'text' }, 'Block client address (accepted, unused).', { perNode: true, used: false }),
  key('ozone.scm.datanode.address', { kind: 'text' }, 'Datanode protocol address (accepted, unused).', { perNode: true, used: false }),
  key('ozone.scm.ratis.enable', bool, 'Older Ozone switch for SCM HA; SCM here is always replicated (accepted, unused).', { default: 'true', used: false }),
  // Directories.
  key(KEY.dbDirs, { kind: 'path' }, 'Directory for scm.db and the VERSION file (falls back to ozone.metadata.dirs).', { perNode: true }),
  key(KEY.haRatisStorageDir, { kind: 'path' }, 'Directory for the Raft log (falls back to <ozone.metadata.dirs>/scm-ha).', { perNode: true }),
  key(KEY.ratisStorageDir, { kind: 'path' }, 'Alias of ozone.scm.ha.ratis.storage.dir.', { perNode: true }),
  key(KEY.metadataDirs, { kind: 'path' }, 'Fallback directory for scm.db and (under scm-ha/) the Raft log.'),
  key('ozone.scm.datanode.id.dir', { kind: 'path' }, 'Datanode id directory (accepted, unused).', { used: false }),
  // Raft (Ratis) behaviour, SCMHAConfiguration names and defaults.
  key(KEY.rpcType, { kind: 'enum', choices: ['GRPC'] }, 'Raft transport; only GRPC exists here.', { default: 'GRPC' }),
  key(KEY.segmentSize, size, 'Raft log segment size before it rolls.', { default: '64MB' }),
  key(KEY.segmentPreallocatedSize, size, 'Bytes preallocated for an open segment.', { default: '4MB' }),
  key(KEY.appenderQueueNumElements, count(1, 1_000_000), 'Most entries in flight to one follower.', { default: '1024' }),
  key(KEY.appenderQueueByteLimit, size, 'Most bytes in flight to one follower, and the largest frame of Raft messages a member accepts: a sender batches at most half of it (4MB at most) into a frame, an append carries entries of at most a quarter of it (1MB at most, one entry alone if it is larger) and one entry may be at most a quarter of it (a larger command is refused INVALID_ARGUMENT). Set it alike on every member; at least 64KB.', { default: '32MB' }),
  key(KEY.logPurgeEnabled, bool, 'Purge log segments below the snapshot.', { default: 'false' }),
  key(KEY.logPurgeGap, count(1, Number.MAX_SAFE_INTEGER), 'Entries kept below the snapshot when purging.', { default: '1000000' }),
  // Not an Ozone key (Ozone's SCM purges up to the snapshot whenever purging is enabled): Ratis'
  // raft.server.log.purge.upto.snapshot.index; false (Ratis' default) is a deliberate divergence.
  key(KEY.logPurgeUptoSnapshotIndex, bool, 'Purge up to the snapshot even past entries a live follower still needs (it then installs a checkpoint); false keeps them until it has them.', { default: 'false' }),
  key(KEY.logCorruptionPolicy, { kind: 'enum', choices: ['EXCEPTION', 'WARN_AND_RETURN'] }, 'What to do with a corrupt log entry on start.', { default: 'EXCEPTION' }),
  // Not an Ozone key: Ozone's SCM fixes Ratis' log cache at 2 segments in code. Named as Ratis'
  // raft.server.log.segment.cache.size.max under the prefix Ozone gives SCM's Ratis server keys.
  key(KEY.logCacheSize, size, 'Bytes of recent Raft log entries (as written to the segments) kept in memory to feed followers and the state machine; entries beyond it are read back from the segment files. 0 keeps only what is not yet written.', { default: '8MB' }),
  // Not an Ozone key (Ratis' log worker is a thread of its own; Node's event loop is the node's
  // only thread for JavaScript): named under the same prefix as the log cache's.
  key(KEY.followerSyncOnLoop, bool, 'A follower makes its log durable with a synchronous fdatasync on its event loop, which shortens every acknowledgement by a thread-pool round trip but leaves the follower doing nothing else while the disk syncs; false uses the thread pool, as the leader always does.', { default: 'true' }),
  key(KEY.snapshotThreshold, count(1, Number.MAX_SAFE_INTEGER), 'Applied entries between snapshot points.', { default: '1000' }),
  key(KEY.snapshotCreationGap, count(1, Number.MAX_SAFE_INTEGER), 'Minimum entries between manually triggered snapshots.', { default: '1024' }),
  key(KEY.leaderElectionTimeout, ms, 'Minimum election timeout; the maximum is 200 ms more (as Ozone), heartbeats at half.', { default: '5s' }),
  key(KEY.firstElectionTimeout, ms, 'Election timeout right after start (defaults to the election timeout).'),
  key(KEY.requestTimeout, ms, 'How long a client request may wait for commit; must exceed 1000 ms.', { default: '30s' }),
  key(KEY.serverRequestTimeout, ms, 'Alias of ozone.scm.ha.ratis.request.timeout.'),
  key(KEY.retryCacheTimeout, ms, 'How long a (clientId, callId) result is kept for exactly-once retries.', { default: '60s' }),
  key(KEY.nodeFailureTimeout, ms, 'A follower silent this long is reported as failed.', { default: '120s' }),
  key(KEY.leaderReadyCheckInterval, ms, 'How often a new leader checks it has applied its term start.', { default: '2s' }),
  key(KEY.leaderReadyWaitTimeout, ms, 'How long a request waits for a new leader to become ready.', { default: '60s' }),
  key(KEY.preVote, bool, 'Run a pre-vote before an election.', { default: 'true' }),
  key(KEY.grpcDeadlineInterval, ms, 'Deadline of one InterSCM gRPC call (checkpoint download).', { default: '30m' }),
  // Not Ozone keys (Ozone has no such rule): a downloading follower must keep reading to keep its
  // transfer slot; one that takes a message just before each 10 s no-progress timeout would not.
  key(KEY.checkpointMinReadBytes, size, 'A follower downloading a checkpoint that takes fewer bytes than this over each ozone.scm.ha.grpc.checkpoint.min.read.window the leader spends waiting for it loses its transfer slot (RESOURCE_EXHAUSTED; it resumes by offset); 0 turns the rule off.', { default: '8MB' }),
  key(KEY.checkpointMinReadWindow, ms, 'The window of ozone.scm.ha.grpc.checkpoint.min.read.bytes (time the leader spends waiting for the reader).', { default: '60s' }),
  // Not an Ozone key (Ozone's checkpoint servlet always deflates): its tables are Snappy-compressed
  // already, and deflating them is slower than a LAN carries the bytes it saves (src/snapshot/tarball.ts).
  key(KEY.checkpointGzipLevel, count(0, 9), 'gzip level of the checkpoint tarball a leader streams to a downloading follower: 0 (stored, still a tar.gz) suits links of 1 Gbit/s and more, 1 those below ~500 Mbit/s; followers read any level.', { default: '0' }),
  // Not an Ozone key (Ozone's follower retries its checkpoint download a fixed number of times): a
  // leader that refuses a download as busy says when to come back, and waiting for it is not a
  // failure of the follower's; this bounds how long it keeps waiting.
  key(KEY.checkpointBusyWaitTimeout, ms, 'How long in all a follower installing a snapshot spends on a leader that refuses its checkpoint download as busy (RESOURCE_EXHAUSTED with a retry hint): the waits it asks for and the refused calls themselves, each from its start to the refusal; such refusals do not count as failed attempts. A wait that would pass it ends the install attempt; 0 ends it at the first such refusal.', { default: '5m' }),
  // Ozone's SCM buffers its DB writes (SCMHADBTransactionBuffer) and flushes them every 60 s or at
  // a snapshot; here the write of applied entries waits at most this long (and at most 4,096
  // entries), since each scm.db write has a fixed cost, whatever it holds, that a 1-caller load pays
  // per allocation on every node. A crash applies what was not written again, from the Raft log.
  key(KEY.dbTransactionBufferFlushInterval, ms, 'How long entries applied to the state machine (answered, visible to queries) may wait before scm.db holds them: one write carries every apply of the interval. The entries are committed in the Raft log, never purged before scm.db holds them; a crash applies them again. 0 writes each applied batch at once; at most 1d.', { default: '50ms' }),
  // State machine limits.
  key(KEY.containerListMaxCount, count(1, 1_000_000), 'Most containers one ListContainer call returns.', { default: '4096' }),
  // Ozone's count of client RPC handler threads. Calls here are asynchronous, so the same key bounds
  // how many client calls one SCM works on at once; beyond it a call is answered RESOURCE_EXHAUSTED
  // with a retry hint, so client load cannot starve the Raft traffic that keeps the leader in place.
  key(KEY.handlerCount, count(1, 100_000), 'Client calls one SCM works on at once; more are answered RESOURCE_EXHAUSTED with a retry hint.', { default: '256' }),
  // Not an Ozone key (Hadoop RPC's handler threads serve every call alike): list calls make their
  // pages one per turn of the event loop, so that they cannot hold it, and wait for the pages ahead
  // of them; this bounds how many wait, so that lists cannot take every handler slot from writes.
  key(KEY.clientListHandlerCount, count(1, 100_000), 'List calls (ListContainer, ListPipelines, ListDatanodes) one SCM works on at once, within ozone.scm.handler.count.key; more are answered RESOURCE_EXHAUSTED with a retry hint.', { default: '16' }),
  // Not an Ozone key (Hadoop RPC reads a call whole before queueing it, bounded by
  // ipc.maximum.data.length per call only): a bound on what calls hold before the handler count
  // applies, which a client opening many calls and never finishing them would otherwise set.
  key(KEY.clientRequestBuffer, size, 'Bytes of client requests one SCM holds, across all connections, for calls whose handler has not run yet (the request still arriving, or being inflated); one connection may hold a quarter of it (at least the worst single call). A call that would take it, or its connection\'s share, past this is answered RESOURCE_EXHAUSTED and not read further. At least 8MB + 80KB (the worst single call: a compressed 4 MiB message, what it inflates to and its inflater).', { default: '64MB' }),
  // Not an Ozone key (Hadoop RPC has ipc.client.connection.maxidletime for idle connections): how
  // long a client may take to send a call's request, so that calls never finished do not hold the
  // request buffer for as long as their connection lasts.
  key(KEY.clientRequestReadTimeout, ms, 'How long a client call\'s request (its message and end of stream) may take to arrive after the call opens; later, the call is answered UNAVAILABLE and its bytes released. A running handler is not bounded by it. 0 for none.', { default: '10s' }),
  // Not an Ozone key (Hadoop RPC's is ipc.server.max.connections, unlimited by default): each
  // connection holds a socket and an HTTP/2 session (about 20 KiB idle, measured) whatever its
  // calls hold, which the request buffer does not see, and a file descriptor the Raft log needs too.
  key(KEY.clientMaxConnections, count(0, 1_000_000), 'Client connections the client port serves at once (TLS handshake done or not); one client address may hold a quarter of them. The connection that takes the last slot makes it close an idle one (of the address holding the most); only when every open connection had a call in progress is a new one closed at once. A connection that has not finished its TLS handshake, or sent the HTTP/2 preface, within ozone.scm.client.request.read.timeout is closed too. Each is counted in scm_client_refusals_total. 0 for no limit.', { default: '1024' }),
  // Not an Ozone key (Ratis' gRPC server has no such limit): grpc-js gives every connection to the
  // Ratis and InterSCM ports an HTTP/2 session; idle ones opened by anyone who can reach the port
  // took a node to its file descriptor limit (which the Raft log needs) and 400 MB more RSS, measured.
  key(KEY.peerMaxConnections, count(0, 1_000_000), `Connections each peer port (ozone.scm.ratis.port, ozone.scm.grpc.port) serves at once, TLS handshake done or not; one address may hold a quarter of them. A connection past either is closed as it is accepted, counted in scm_peer_connection_refusals_total, except that one from a member's address (what the members' hosts resolve to, again on each configuration change, every 30 s and after a refusal at the limit) is admitted past the limit, within its quarter: at most the limit plus a quarter per member address are open. The group's members need one each on the Ratis port (their Raft stream) and one per checkpoint download on the InterSCM port. A client on a member's own address shares that member's quarter. 0 for no limit, else at least ${MIN_PEER_MAX_CONNECTIONS}.`, { default: '128' }),
  // Not an Ozone key (Ozone has no such check): etcd's --experimental-corrupt-check-time, here.
  key(KEY.consistencyCheckInterval, ms, 'How often the leader writes a consistency marker and every member compares its scm.db hash at it with the others; 0 turns the periodic check off (scm admin scm check still runs one).', { default: '5m' }),
  key(KEY.sequenceIdBatchSize, count(1, 1_000_000), 'Container ids a leader reserves per replicated sequence update.', { default: '1000' }),
  // Not an Ozone key (a Java SCM sizes its heap with JVM options): V8's old-generation growing
  // factor for this process (src/server/v8-heap.ts). 100 (a factor of 2, V8 picks up to 4 on a
  // server) releases a leader's load garbage, and the native memory it holds, sooner at no CPU
  // the load rows could measure; 20 holds a loaded leader near 200 MiB at 1 M containers but costs
  // GC time (bench/results/2026-12-03-rss-notes.md, "Round 3").
  key(KEY.v8HeapGrowingPercent, count(0, 300), "How far V8's old generation may grow past what survived the last full collection before the next one, in percent (V8's --heap-growing-percent): lower holds less garbage and costs more collections; 0 lets V8 choose (up to 300 on a server). Changes only when the node collects garbage, not how much memory it may use.", { default: '100' }),
  key('ozone.scm.container.size', size, 'Container size (accepted, unused).', { default: '5GB', used: false }),
  key('ozone.scm.pipeline.owner.container.count', count(1, 1_000_000), 'Open containers per pipeline owner (accepted, unused).', { default: '3', used: false }),
  key('ozone.scm.heartbeat.thread.interval', ms, 'Datanode heartbeat processing interval (accepted, unused).', { default: '3s', used: false }),
  // Security. Ozone turns TLS on only when both switches are true; here one without the other is an
  // error, since running in plaintext when TLS was asked for is the worst outcome.
  key(KEY.securityEnabled, bool, 'Security on; needs hdds.grpc.tls.enabled (this SCM authenticates only by TLS certificates).', { default: 'false' }),
  key(KEY.grpcTlsEnabled, bool, 'Mutual TLS on the client, Ratis and InterSCM ports; needs ozone.security.enabled.', { default: 'false' }),
  key(KEY.grpcTlsProvider, { kind: 'enum', choices: ['OPENSSL', 'JDK'] }, 'TLS provider of a Java SCM (accepted, unused: Node uses OpenSSL).', { default: 'OPENSSL', used: false }),
  key(KEY.caCertificateFile, { kind: 'path' }, 'PEM file with the certificates of the cluster CA (one or more): whom this node trusts.', { perNode: true }),
  key(KEY.certificateFile, { kind: 'path' }, "PEM file with this node's certificate (then any intermediates), naming URI:scm://<serviceId>/<nodeId> and its address.", { perNode: true }),
  key(KEY.privateKeyFile, { kind: 'path' }, "PEM file with the private key of this node's certificate (unencrypted).", { perNode: true }),
  key(KEY.clientCertificateFile, { kind: 'path' }, 'PEM certificate that admin commands and other clients present (its CN is the identity).'),
  key(KEY.clientPrivateKeyFile, { kind: 'path' }, 'PEM private key of ozone.scm.client.x509.certificate.file.'),
  key(KEY.administrators, { kind: 'text' }, 'Comma-separated certificate subject names (CN) allowed to run admin mutations; * for every certificate of the cluster CA.'),
  key(KEY.httpPolicy, { kind: 'enum', choices: HTTP_POLICIES }, 'HTTP_ONLY, HTTPS_ONLY or HTTP_AND_HTTPS for the metrics and health endpoints.', { default: 'HTTP_ONLY' }),
  key(KEY.httpsAddress, { kind: 'host-port' }, 'HTTPS address (metrics, health) when ozone.http.policy serves HTTPS.', { default: `0.0.0.0:${DEFAULT_HTTPS_PORT}`, perNode: true }),
  key(KEY.auditLogFile, { kind: 'path' }, 'JSON audit log of admin mutations (default: scm-audit.log beside scm.db).', { perNode: true }),
];

export function findKeySpec(name: string): ConfigKeySpec | undefined {
  return KNOWN_CONFIG_KEYS.find((spec) => spec.pattern.test(name));
}

/** Namespaces whose every key this node must understand; keys outside them are other services' business. */
const STRICT_NAMESPACES = ['ozone.scm.', 'hdds.grpc.tls.'] as const;

/** True for keys this node must understand (an unknown one is an error). */
export function isScmKey(name: string): boolean {
  return STRICT_NAMESPACES.some((prefix) => name.startsWith(prefix));
}

/** Checks one key/value pair: unknown `ozone.scm.` keys and malformed values throw, naming the key. */
export function checkConfigEntry(name: string, value: string): void {
  const spec = findKeySpec(name);
  if (spec === undefined) {
    if (isScmKey(name)) throw new Error(`unknown configuration key ${name}`);
    return;
  }
  checkValue(name, value, spec.type);
}

export function checkValue(name: string, value: string, type: ConfigValueType): void {
  switch (type.kind) {
    case 'duration':
      parseDurationMs(name, value, type.unit);
      return;
    case 'size':
      parseSizeBytes(name, value);
      return;
    case 'integer':
      parseInteger(name, value, type.min, type.max);
      return;
    case 'boolean':
      parseBoolean(name, value);
      return;
    case 'enum':
      parseEnum(name, value, type.choices);
      return;
    case 'port':
      parsePort(name, value);
      return;
    case 'host':
      parseHost(name, value);
      return;
    case 'host-port':
      parseHostPort(name, value);
      return;
    case 'path':
      if (value.trim().length === 0) throw new ConfigValueError(name, value, 'expected a directory path');
      if (value.includes('\0')) throw new ConfigValueError(name, value, 'a path may not contain NUL');
      return;
    case 'id':
      if (!ID_RE.test(value.trim())) throw new ConfigValueError(name, value, `expected an id made of letters, digits, "_" and "-"`);
      return;
    case 'id-list': {
      const ids = parseList(value);
      if (ids.length === 0) throw new ConfigValueError(name, value, 'expected a comma-separated list of ids');
      for (const id of ids) {
        if (!ID_RE.test(id)) {
          throw new ConfigValueError(name, value, `"${id}" is not a valid id`);
        }
      }
      return;
    }
    case 'text':
      if (value.trim().length === 0) throw new ConfigValueError(name, value, 'expected a non-empty value');
      return;
  }
}
