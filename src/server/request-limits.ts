// The client port's request limits that both its server (unary-grpc-server.ts) and the
// configuration (config.ts, which checks ozone.scm.client.request.buffer.size) need: here, so that
// reading the configuration does not load the server.

/** grpc-js' default receive limit (DEFAULT_MAX_RECEIVE_MESSAGE_LENGTH), which the node keeps. */
export const DEFAULT_MAX_RECEIVE_BYTES = 4 * 1024 * 1024;

/**
 * What one inflater holds besides the bytes charged for its input and output, charged to a
 * compressed call while it inflates. Measured: 2,000 zlib inflaters (createUnzip, createInflate)
 * paused mid-stream on a 4 MiB gzip bomb took 67-68 KiB of RSS and 1.7 KiB of JavaScript heap
 * each (Node 20.20: zlib's inflate state, about 7 KiB, its 32 KiB window, the stream's 16 KiB
 * output buffer and Node's own objects); the review measured about 78 KiB of external memory per
 * concurrent decompressor on the image's Node. 80 KiB covers both.
 */
export const INFLATER_OVERHEAD_BYTES = 80 * 1024;

/**
 * The smallest request budget that holds the worst single call, so that a call refused for the
 * budget can always succeed later: a compressed message of the largest size, what it inflates to
 * (also at most the receive limit) and its inflater, held together until the handler runs.
 */
export function minRequestBufferBytes(maxReceiveBytes: number): number {
  return 2 * maxReceiveBytes + INFLATER_OVERHEAD_BYTES;
}
