// Options every grpc-js server and channel of ours is created with (the servers of the Ratis and
// InterSCM ports; the client port runs src/server/unary-grpc-server.ts).
//
// Channelz off: grpc-js keeps channelz bookkeeping for every server, channel and call by default
// (call counters, a `new Date()` per call start, a registry entry per socket), for an admin service
// we do not serve. A unary call on loopback measured 15-25 µs less CPU, client and server together
// (`npm run bench:grpc-floor`), about 5-8 % of a bare call.
import type { ChannelOptions, ServerOptions } from '@grpc/grpc-js';

const COMMON = { 'grpc.enable_channelz': 0 } as const;

/** Options for a grpc.Server: ours, then `extra`. */
export function grpcServerOptions(extra: ServerOptions = {}): ServerOptions {
  return { ...COMMON, ...extra };
}

/** Options for a client channel: ours, then `extra` (the caller's own win). */
export function grpcChannelOptions(extra: ChannelOptions = {}): ChannelOptions {
  return { ...COMMON, ...extra };
}
