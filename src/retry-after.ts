// The trailing metadata with which an SCM that refuses a call as RESOURCE_EXHAUSTED tells the caller
// when to come back, in milliseconds as a decimal string. One definition for every port that sends
// it: the client port (src/server/client-service.ts, honoured by src/client) and the InterSCM port
// (src/snapshot/download-service.ts, honoured by the follower's downloader). A leaf module, because
// src/snapshot may not import src/api, where the client port's other metadata keys live.

/** With RESOURCE_EXHAUSTED: how long (ms) the caller should wait before it asks this SCM again. */
export const RETRY_AFTER_METADATA = 'scm-retry-after-ms';

/**
 * The wait the client port asks for when it refuses a call for load that clears in moments (the
 * calls in progress, the request bytes held for calls not yet handled): about one call's time.
 */
export const DEFAULT_RETRY_AFTER_MS = 50;
