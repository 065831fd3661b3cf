// A raw Raft peer stream for hostile-input tests: sends whatever messages a test builds, under
// whatever sender id it claims, as an attacker on the network would (no TLS here).
import * as grpc from '@grpc/grpc-js';
import { loadGrpcPackage } from '../../src/api/proto-files.js';
import { CLUSTER_ID_METADATA, FROM_ID_METADATA } from '../../src/server/peer-transport.js';

const raftPackage = (loadGrpcPackage('RaftPeerProtocol.proto')['scm'] as grpc.GrpcObject)['raft'] as grpc.GrpcObject;
const RaftPeerService = raftPackage['RaftPeerService'] as grpc.ServiceClientConstructor;

/** Opens a raw Raft stream as `from` and sends `batches`; resolves with how the stream ended. */
export function rawStream(address: string, clusterId: string, from: string, batches: Uint8Array[][], maxSend = 256 * 1024 * 1024): Promise<grpc.StatusObject | undefined> {
  const client = new RaftPeerService(address, grpc.credentials.createInsecure(), { 'grpc.max_send_message_length': maxSend });
  const metadata = new grpc.Metadata();
  metadata.set(CLUSTER_ID_METADATA, clusterId);
  metadata.set(FROM_ID_METADATA, from);
  return new Promise((resolve) => {
    const call = (client as unknown as { Stream: (md: grpc.Metadata, cb: (err: grpc.ServiceError | null) => void) => grpc.ClientWritableStream<{ messages: Uint8Array[] }> }).Stream(metadata, (err) => {
      client.close();
      resolve(err ?? undefined);
    });
    call.on('error', () => undefined);
    for (const messages of batches) call.write({ messages });
    call.end();
  });
}
