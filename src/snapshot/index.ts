// Public surface of src/snapshot: checkpoints of scm.db, tar.gz packing, the InterSCM download
// service and client, safe extraction, the crash-safe installer and the follower's downloader.
export { createCheckpoint, listCheckpointDirs, removeIncompleteCheckpoints, CHECKPOINT_DIR_PREFIX, type Checkpoint, type CheckpointOptions, type RootDb } from './checkpoint.js';
export { CheckpointProvider, ResourceExhaustedError, type CheckpointLease, type CheckpointProviderOptions } from './checkpoint-provider.js';
export { packCheckpoint, type PackOptions, type PackSource } from './tarball.js';
export { MANIFEST_NAME, parseManifest, type Manifest, type ManifestFile } from './manifest.js';
export { registerInterScmService, DEFAULT_CHUNK_SIZE, DEFAULT_SERVE_IDLE_TIMEOUT_MS, DEFAULT_MIN_READ_BYTES, DEFAULT_READ_WINDOW_MS, DEFAULT_KEEPALIVE_INTERVAL_MS, SERVE_REFUSALS, CLUSTER_ID_METADATA as INTER_SCM_CLUSTER_ID_METADATA, type DownloadCall, type InterScmServiceOptions, type ServeRefusal, type SnapshotLogger } from './download-service.js';
export { ServeLimiter, peerHost, DEFAULT_PEER_LIMIT, DEFAULT_REQUESTER_LIMIT, type RateLimit, type ServeLimiterOptions } from './serve-limiter.js';
export { checkRequestId, InvalidRequestError, MAX_REQUEST_ID_LENGTH } from './request-checks.js';
export { SnapshotAbortedError } from './aborted.js';
export { downloadCheckpoint, DownloadError, DEFAULT_NO_PROGRESS_TIMEOUT_MS, type DownloadChannel, type DownloadConsumer, type DownloadRequest, type DownloadedCheckpoint, type DownloadProgress, type ResumePoint } from './download-client.js';
export { extractCheckpointTarball, extractCheckpointStream, safeEntryName, UnsafeTarballError, DEFAULT_EXTRACT_LIMITS, type ExtractLimits, type ExtractOptions, type ExtractedCheckpoint, type DeclaredSize, PRE_MANIFEST_SOURCE_BYTES } from './safe-extract.js';
export { installCheckpoint, recoverInterruptedInstall, OlderCheckpointError, INSTALL_FAILPOINTS, SCM_DB_NAME, DB_BACKUP_PREFIX, DB_INCONSISTENT_MARKER, type InstallRequest, type RecoveryOutcome } from './installer.js';
export { SnapshotDownloader, StaleCheckpointError, BusyLeaderError, DEFAULT_BUSY_WAIT_TIMEOUT_MS, type SnapshotDownloaderOptions, type ReadyCheckpoint } from './snapshot-downloader.js';
export { chunkChecksum } from './chunk-checksum.js';
export { FAILPOINTS_ENV, failpoint, failpointAsync } from '../failpoints.js';
export { INTER_SCM_PROTO_PATH, interScmServiceDefinition, interScmClientConstructor } from './inter-scm-proto.js';
