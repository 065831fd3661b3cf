// A raw Raft stream for hostile-input tests: sends whatever messages a test builds, under whatever
// sender id it claims, as an attacker on the network would (raft-stream-wire.ts has the bytes).
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';
import { decodeRefusal, emptyFrame, encodeMessages, encodeOpening, FrameReader, FrameType, MAX_CONTROL_FRAME_BYTES, RefusalCode } from '../../src/server/raft-stream-wire.js';

/** How a raw stream ended when it did not end well: the REFUSAL's code and details, or UNAVAILABLE. */
export interface RawStreamEnd {
  readonly code: number;
  readonly details: string;
}

/**
 * Opens a raw Raft stream as `from` (with `tls`, over TLS), sends a PING and then `batches`, ends
 * it, and resolves with how it ended: undefined when the server accepted it (a PONG came back) and
 * closed it without a REFUSAL; the REFUSAL's code and details; UNAVAILABLE when the connection
 * closed with neither (a TLS handshake refused, say).
 */
export function rawStream(address: string, clusterId: string, from: string, batches: Uint8Array[][], tls?: ConnectionOptions): Promise<RawStreamEnd | undefined> {
  const colon = address.lastIndexOf(':');
  const host = address.slice(0, colon);
  const port = Number(address.slice(colon + 1));
  return new Promise((resolve) => {
    const socket: Socket = tls === undefined ? netConnect({ host, port }) : tlsConnect({ ...tls, host, port });
    const reader = new FrameReader(MAX_CONTROL_FRAME_BYTES, false);
    let accepted = false;
    let refusal: RawStreamEnd | undefined;
    let failure: string | undefined;
    socket.once(tls === undefined ? 'connect' : 'secureConnect', () => {
      socket.write(encodeOpening(clusterId, from));
      socket.write(emptyFrame(FrameType.Ping));
      for (const messages of batches) socket.write(encodeMessages(messages));
      socket.end();
    });
    socket.on('data', (chunk: Buffer) => {
      try {
        for (const frame of reader.push(chunk)) {
          if (frame.type === FrameType.Pong) accepted = true;
          else if (frame.type === FrameType.Refusal) refusal ??= decodeRefusal(frame.body);
        }
      } catch (err) {
        failure ??= `the server answered with bytes that are not the protocol: ${(err as Error).message}`;
      }
    });
    socket.on('error', (err) => (failure ??= err.message));
    socket.on('close', () => {
      if (refusal !== undefined) resolve(refusal);
      else if (accepted && failure === undefined) resolve(undefined);
      else resolve({ code: RefusalCode.UNAVAILABLE, details: failure ?? 'the connection closed before the stream was accepted' });
    });
  });
}
