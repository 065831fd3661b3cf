// Servers and channels made with our options keep no channelz records (grpc-js registers them in a
// process-wide registry only when channelz is on); the plain ones beside them show that the check
// would see a registration.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { grpcChannelOptions, grpcServerOptions } from '../../src/grpc-options.js';

type ListCall = (call: { request: Record<string, string> }, callback: (error: unknown, value: Record<string, unknown[]>) => void) => void;

function registered(kind: 'GetServers' | 'GetTopChannels'): Promise<number> {
  const handler = grpc.getChannelzHandlers()[kind] as unknown as ListCall;
  return new Promise((resolve, reject) =>
    handler({ request: { max_results: '1000', start_server_id: '0', start_channel_id: '0' } }, (error, value) => {
      if (error !== null) reject(error as Error);
      else resolve((value['server'] ?? value['channel'] ?? []).length);
    }),
  );
}

test('a server made with grpcServerOptions is not registered with channelz; a plain one is', async () => {
  const before = await registered('GetServers');
  const ours = new grpc.Server(grpcServerOptions({ 'grpc.max_concurrent_streams': 8 }));
  assert.equal(await registered('GetServers'), before);
  const plain = new grpc.Server();
  assert.equal(await registered('GetServers'), before + 1);
  ours.forceShutdown();
  plain.forceShutdown();
});

test('a channel made with grpcChannelOptions is not registered with channelz; a plain one is', async () => {
  const before = await registered('GetTopChannels');
  const ours = new grpc.Client('127.0.0.1:1', grpc.credentials.createInsecure(), grpcChannelOptions({ 'grpc.initial_reconnect_backoff_ms': 100 }));
  assert.equal(await registered('GetTopChannels'), before);
  const plain = new grpc.Client('127.0.0.1:1', grpc.credentials.createInsecure(), {});
  assert.equal(await registered('GetTopChannels'), before + 1);
  ours.close();
  plain.close();
});

test('the caller’s options are kept, and may switch channelz back on', () => {
  assert.deepEqual(grpcServerOptions({ 'grpc.max_concurrent_streams': 8 }), { 'grpc.enable_channelz': 0, 'grpc.max_concurrent_streams': 8 });
  assert.equal(grpcChannelOptions({ 'grpc.enable_channelz': 1 })['grpc.enable_channelz'], 1);
});
