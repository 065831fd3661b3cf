// The bytes of a Raft stream on the Ratis port (ozone.scm.ratis.port): a TCP connection (TLS when
// the node runs mutual TLS) that one SCM opens to a peer and pushes its Raft messages down. HTTP/2
// and grpc-js cost each message about 150 µs of CPU per side and two event-loop hops; a frame on
// the socket costs a few (bench:grpc-floor, and the note of issue 12).
//
// The client opens with the 8 bytes MAGIC, then sends frames; the server sends frames back.
//
//   frame   := length:u32be type:u8 body[length - 1]        (length counts the type byte)
//   HELLO     (client, first frame, once)  u16be n, cluster id (UTF-8, n bytes), u16be m, sender id (m bytes)
//   MESSAGES  (client)                     1 or more of: u32be n, n bytes of a Raft message (raft-codec.ts)
//   PING      (client)                     empty; answered with a PONG once the stream is accepted
//   PONG      (server)                     empty
//   REFUSAL   (server, last frame)         u8 gRPC status code, details (UTF-8); the server then ends
//
// Raft tolerates loss, duplication and reordering across reconnects, so nothing is acknowledged
// per message: a reply travels on the other node's own stream.
export const RAFT_STREAM_MAGIC = Buffer.from('SCMRAFT1', 'latin1');

export const FrameType = {
  Hello: 1,
  Messages: 2,
  Ping: 3,
  Pong: 4,
  Refusal: 5,
} as const;
export type FrameType = (typeof FrameType)[keyof typeof FrameType];

/** How an HTTP/2 client (a gRPC channel) opens a connection. */
const HTTP2_PREFACE = 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n';

const FRAME_TYPES: ReadonlySet<number> = new Set(Object.values(FrameType));

/** Longest cluster id or sender id a HELLO may carry, in bytes. */
export const MAX_HELLO_ID_BYTES = 256;
/** Largest frame a server accepts before the HELLO, and a client from the server (PONG, REFUSAL). */
export const MAX_CONTROL_FRAME_BYTES = 4 * 1024;
/** Longest REFUSAL details written, in bytes (longer ones are cut). */
const MAX_REFUSAL_DETAILS_BYTES = MAX_CONTROL_FRAME_BYTES - 16;

/** The stream broke the protocol: what was wrong, as a refusal's details. */
export class RaftStreamProtocolError extends Error {
  constructor(
    message: string,
    /** gRPC status of the refusal: RESOURCE_EXHAUSTED for a frame over the limit, else INVALID_ARGUMENT. */
    readonly code: number,
  ) {
    super(message);
    this.name = 'RaftStreamProtocolError';
  }
}

/** gRPC status codes used in refusals (the numbers grpc-js' `status` has). */
export const RefusalCode = {
  INVALID_ARGUMENT: 3,
  FAILED_PRECONDITION: 9,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  INTERNAL: 13,
  UNAVAILABLE: 14,
} as const;

function header(length: number, type: FrameType): Buffer {
  const b = Buffer.allocUnsafe(5);
  b.writeUInt32BE(length, 0);
  b[4] = type;
  return b;
}

/** An empty frame of `type` (PING, PONG). */
export function emptyFrame(type: typeof FrameType.Ping | typeof FrameType.Pong): Buffer {
  return header(1, type);
}

function idBytes(id: string, what: string): Buffer {
  const bytes = Buffer.from(id, 'utf8');
  if (bytes.length > MAX_HELLO_ID_BYTES) throw new RangeError(`${what} is ${bytes.length} bytes long; at most ${MAX_HELLO_ID_BYTES} fit in a HELLO`);
  return bytes;
}

/** The magic and the HELLO: what a client writes first. */
export function encodeOpening(clusterId: string, from: string): Buffer {
  const cluster = idBytes(clusterId, 'the cluster id');
  const sender = idBytes(from, 'the sender id');
  const body = Buffer.allocUnsafe(4 + cluster.length + sender.length);
  body.writeUInt16BE(cluster.length, 0);
  cluster.copy(body, 2);
  body.writeUInt16BE(sender.length, 2 + cluster.length);
  sender.copy(body, 4 + cluster.length);
  return Buffer.concat([RAFT_STREAM_MAGIC, header(1 + body.length, FrameType.Hello), body]);
}

export interface Hello {
  readonly clusterId: string;
  readonly from: string;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

function readId(body: Buffer, at: number, what: string): { value: string; next: number } {
  if (at + 2 > body.length) throw new RaftStreamProtocolError(`HELLO ends before the length of its ${what}`, RefusalCode.INVALID_ARGUMENT);
  const n = body.readUInt16BE(at);
  if (n > MAX_HELLO_ID_BYTES) throw new RaftStreamProtocolError(`HELLO's ${what} is ${n} bytes long, above ${MAX_HELLO_ID_BYTES}`, RefusalCode.INVALID_ARGUMENT);
  if (at + 2 + n > body.length) throw new RaftStreamProtocolError(`HELLO ends inside its ${what}`, RefusalCode.INVALID_ARGUMENT);
  let value: string;
  try {
    value = utf8.decode(body.subarray(at + 2, at + 2 + n));
  } catch {
    throw new RaftStreamProtocolError(`HELLO's ${what} is not UTF-8`, RefusalCode.INVALID_ARGUMENT);
  }
  return { value, next: at + 2 + n };
}

export function decodeHello(body: Buffer): Hello {
  const cluster = readId(body, 0, 'cluster id');
  const from = readId(body, cluster.next, 'sender id');
  if (from.next !== body.length) throw new RaftStreamProtocolError(`HELLO has ${body.length - from.next} bytes after its sender id`, RefusalCode.INVALID_ARGUMENT);
  return { clusterId: cluster.value, from: from.value };
}

/** One MESSAGES frame holding `messages`, as the pieces to write (header, then each length and message). */
export function encodeMessages(messages: readonly Uint8Array[]): Buffer {
  let bodyBytes = 0;
  for (const m of messages) bodyBytes += 4 + m.byteLength;
  const frame = Buffer.allocUnsafe(5 + bodyBytes);
  frame.writeUInt32BE(1 + bodyBytes, 0);
  frame[4] = FrameType.Messages;
  let at = 5;
  for (const m of messages) {
    frame.writeUInt32BE(m.byteLength, at);
    frame.set(m, at + 4);
    at += 4 + m.byteLength;
  }
  return frame;
}

/** The messages of a MESSAGES body (views into it). */
export function decodeMessages(body: Buffer): Uint8Array[] {
  if (body.length === 0) throw new RaftStreamProtocolError('MESSAGES frame holds no message', RefusalCode.INVALID_ARGUMENT);
  const out: Uint8Array[] = [];
  let at = 0;
  while (at < body.length) {
    if (at + 4 > body.length) throw new RaftStreamProtocolError(`MESSAGES frame ends inside the length of message ${out.length + 1}`, RefusalCode.INVALID_ARGUMENT);
    const n = body.readUInt32BE(at);
    if (n === 0) throw new RaftStreamProtocolError(`message ${out.length + 1} of a MESSAGES frame is empty`, RefusalCode.INVALID_ARGUMENT);
    if (at + 4 + n > body.length) throw new RaftStreamProtocolError(`message ${out.length + 1} of a MESSAGES frame claims ${n} bytes; ${body.length - at - 4} are left`, RefusalCode.INVALID_ARGUMENT);
    out.push(body.subarray(at + 4, at + 4 + n));
    at += 4 + n;
  }
  return out;
}

export interface Refusal {
  readonly code: number;
  readonly details: string;
}

export function encodeRefusal(refusal: Refusal): Buffer {
  let details = Buffer.from(refusal.details, 'utf8');
  if (details.length > MAX_REFUSAL_DETAILS_BYTES) details = Buffer.from(utf8Cut(details, MAX_REFUSAL_DETAILS_BYTES));
  const frame = header(2 + details.length, FrameType.Refusal);
  return Buffer.concat([frame, Buffer.from([refusal.code & 0xff]), details]);
}

function utf8Cut(bytes: Buffer, max: number): Buffer {
  let end = max;
  // Back off to a character boundary (not inside a multi-byte sequence).
  while (end > 0 && (bytes[end]! & 0xc0) === 0x80) end--;
  return bytes.subarray(0, end);
}

export function decodeRefusal(body: Buffer): Refusal {
  if (body.length < 1) throw new RaftStreamProtocolError('REFUSAL frame without a status code', RefusalCode.INVALID_ARGUMENT);
  let details: string;
  try {
    details = utf8.decode(body.subarray(1));
  } catch {
    throw new RaftStreamProtocolError('REFUSAL details are not UTF-8', RefusalCode.INVALID_ARGUMENT);
  }
  return { code: body[0]!, details };
}

export interface Frame {
  readonly type: FrameType;
  readonly body: Buffer;
}

/** A frame refused because the bytes held by frames still arriving would pass their budget. */
export class FrameBudgetExceeded extends RaftStreamProtocolError {
  constructor(message: string) {
    super(message, RefusalCode.RESOURCE_EXHAUSTED);
    this.name = 'FrameBudgetExceeded';
  }
}

/**
 * The bytes that frames still arriving may hold, shared by every FrameReader of one server: a
 * per-stream frame cap alone bounds each stream, not the streams together (every connection the
 * port admits could hold a frame at the cap).
 */
export class FrameBudget {
  /** Bytes allocated now for frames not yet complete, across the readers charging this budget. */
  private heldBytes = 0;

  constructor(
    readonly limit: number,
    /** What the limit is, for a refusal's details. */
    readonly describe: string,
  ) {
    if (!Number.isSafeInteger(limit) || limit < 1) throw new RangeError(`a frame budget must be a positive whole number of bytes, not ${limit}`);
  }

  get held(): number {
    return this.heldBytes;
  }

  /** Takes `bytes` for a frame of `frameBytes`, or throws FrameBudgetExceeded (taking nothing). */
  take(bytes: number, frameBytes: number): void {
    if (this.heldBytes + bytes > this.limit) {
      throw new FrameBudgetExceeded(
        `a frame of ${frameBytes} bytes would take the bytes held by frames still arriving on this node's Raft streams past ${this.limit} (${this.describe}); ${this.heldBytes} are held now; retry later`,
      );
    }
    this.heldBytes += bytes;
  }

  release(bytes: number): void {
    this.heldBytes -= bytes;
  }
}

/** Up to this length a frame still arriving gets its whole length at once; above it, it grows by doubling. */
export const WHOLE_FRAME_BUFFER_BYTES = 64 * 1024;

/** A frame whose length is known and whose bytes are still arriving, assembled in a buffer of its own. */
interface FrameInProgress {
  readonly type: FrameType;
  /** The frame's bytes with its length prefix (4 + length). */
  readonly total: number;
  buffer: Buffer;
  filled: number;
}

/**
 * Cuts a byte stream into frames, checking each length against the limit before any of its body is
 * held beyond the socket read it came in. A frame that is not complete in what has arrived is
 * assembled in a buffer of its own from its header on, not kept as the chunks it came in (each a
 * Buffer with its own overhead, so a sender trickling small reads would hold far more memory than
 * bytes): its whole length at once up to WHOLE_FRAME_BUFFER_BYTES, grown by doubling above (never
 * more than the frame's length, nor than twice what has arrived or WHOLE_FRAME_BUFFER_BYTES).
 *
 * A frame longer than WHOLE_FRAME_BUFFER_BYTES has each allocation charged to the budget, if one is
 * given, before it is made, released when the frame is handed out or the reader discarded. A
 * shorter one is not charged: a reader holds one frame at a time, so those are bounded by the
 * port's connections (ozone.scm.peer.max.connections, 64 KiB each), and charging them let whoever
 * fills the budget (anyone, in plaintext) have every member's frame refused that happened to span
 * two reads, heartbeats and the appends of a steady load included, not only catch-up's large ones.
 * A frame complete in one chunk is a view of it (it is handed out before the next read). Besides
 * that buffer a reader holds fewer than 8 bytes (a frame's header or the magic in pieces) between
 * reads. Optionally checks the magic first (the server side).
 */
export class FrameReader {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private magicPending: boolean;
  private inProgress: FrameInProgress | undefined;
  /** Bytes this reader holds against the budget. */
  private charged = 0;

  constructor(
    /** Largest frame length accepted now (it may change, e.g. once the HELLO is accepted). */
    public maxFrameBytes: number,
    expectMagic: boolean,
    private readonly budget?: FrameBudget,
  ) {
    this.magicPending = expectMagic;
  }

  /** Bytes held, waiting for the rest of their frame (the frame in progress's buffer counted by what it holds). */
  get bufferedBytes(): number {
    return this.buffered + (this.inProgress?.filled ?? 0);
  }

  /** Bytes this reader holds against its budget now (the frame in progress's buffer). */
  get chargedBytes(): number {
    return this.charged;
  }

  /** Holds a chunk; next() then takes the frames it completes, one at a time. */
  append(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.buffered += chunk.length;
  }

  /** Drops what is held and returns its budget: the reader is done with (its connection ended). */
  discard(): void {
    this.chunks = [];
    this.buffered = 0;
    this.inProgress = undefined;
    this.charge(0, 0);
  }

  /**
   * The next complete frame, or undefined until more bytes arrive. One at a time, so that a limit
   * raised after a frame (the HELLO accepted) applies to the frames that follow it in the same
   * chunk. Throws RaftStreamProtocolError on the first violation (FrameBudgetExceeded when the
   * budget cannot hold the frame's buffer); the reader must then be dropped with its connection
   * (discard()).
   */
  next(): Frame | undefined {
    if (this.inProgress === undefined) {
      if (this.magicPending) {
        if (this.buffered === 0) return undefined;
        this.checkMagicPrefix();
        if (this.buffered < RAFT_STREAM_MAGIC.length) return this.keepTail();
        this.consume(RAFT_STREAM_MAGIC.length);
        this.magicPending = false;
      }
      if (this.buffered < 5) return this.keepTail();
      const head = this.peek(5);
      const length = head.readUInt32BE(0);
      const type = head[4]!;
      if (length < 1) throw new RaftStreamProtocolError('a frame of length 0 (it must hold at least its type)', RefusalCode.INVALID_ARGUMENT);
      if (!FRAME_TYPES.has(type)) throw new RaftStreamProtocolError(`unknown frame type ${type}`, RefusalCode.INVALID_ARGUMENT);
      if (length > this.maxFrameBytes) {
        throw new RaftStreamProtocolError(`a frame of ${length} bytes, above the ${this.maxFrameBytes} this stream accepts now`, RefusalCode.RESOURCE_EXHAUSTED);
      }
      if (this.buffered >= 4 + length) {
        const frame = this.consume(4 + length);
        return { type: type as FrameType, body: frame.subarray(5) };
      }
      this.inProgress = { type: type as FrameType, total: 4 + length, buffer: Buffer.alloc(0), filled: 0 };
    }
    const frame = this.inProgress;
    const take = Math.min(this.buffered, frame.total - frame.filled);
    if (take === 0) return undefined;
    const needed = frame.filled + take;
    if (needed > frame.buffer.length) {
      const capacity = Math.min(frame.total, Math.max(needed, 2 * frame.buffer.length, WHOLE_FRAME_BUFFER_BYTES));
      if (frame.total > WHOLE_FRAME_BUFFER_BYTES) this.charge(capacity, frame.total);
      // Not from the shared pool: a slice of it would hold the pool's 8 KiB slab.
      const grown = Buffer.allocUnsafeSlow(capacity);
      frame.buffer.copy(grown, 0, 0, frame.filled);
      frame.buffer = grown;
    }
    this.copyOut(frame.buffer, frame.filled, take);
    frame.filled = needed;
    if (frame.filled < frame.total) return undefined;
    this.inProgress = undefined;
    // Handed out: from here the bytes are the messages' (the Raft loop's), not a frame still arriving.
    this.charge(0, 0);
    return { type: frame.type, body: frame.buffer.subarray(5, frame.total) };
  }

  /**
   * Copies the few bytes left over (part of a header or of the magic) out of the socket read they
   * came in, which they would otherwise keep whole (up to 64 KiB) until the next read; undefined.
   */
  private keepTail(): undefined {
    if (this.buffered > 0 && (this.chunks.length > 1 || this.chunks[0]!.buffer.byteLength > this.buffered)) {
      const own = Buffer.allocUnsafeSlow(this.buffered);
      this.copyOut(own, 0, this.buffered);
      this.chunks = [own];
      this.buffered = own.length;
    }
    return undefined;
  }

  /** Sets the bytes held against the budget to `bytes` (for a frame of `frameBytes`); throws FrameBudgetExceeded when more do not fit. */
  private charge(bytes: number, frameBytes: number): void {
    const more = bytes - this.charged;
    if (this.budget !== undefined) {
      if (more > 0) this.budget.take(more, frameBytes);
      else if (more < 0) this.budget.release(-more);
    }
    this.charged = bytes;
  }

  /** Moves the first `n` buffered bytes (n <= buffered) into `target` at `at`. */
  private copyOut(target: Buffer, at: number, n: number): void {
    let left = n;
    while (left > 0) {
      const first = this.chunks[0]!;
      if (first.length <= left) {
        first.copy(target, at);
        at += first.length;
        left -= first.length;
        this.chunks.shift();
      } else {
        first.copy(target, at, 0, left);
        this.chunks[0] = first.subarray(left);
        left = 0;
      }
    }
    this.buffered -= n;
  }

  /** append(chunk), then every frame complete at the current limit (for a side whose limit never changes). */
  push(chunk: Buffer): Frame[] {
    this.append(chunk);
    const frames: Frame[] = [];
    for (let frame = this.next(); frame !== undefined; frame = this.next()) frames.push(frame);
    return frames;
  }

  private checkMagicPrefix(): void {
    const have = this.peek(Math.min(this.buffered, RAFT_STREAM_MAGIC.length));
    if (!have.equals(RAFT_STREAM_MAGIC.subarray(0, have.length))) {
      const http2 = have.length >= 3 && HTTP2_PREFACE.startsWith(have.toString('latin1'));
      throw new RaftStreamProtocolError(
        http2
          ? 'the connection speaks HTTP/2, not an SCM Raft stream (an SCM of an earlier version, whose Raft streams were gRPC, or another client on the Ratis port)'
          : 'the connection does not open with an SCM Raft stream',
        RefusalCode.INVALID_ARGUMENT,
      );
    }
  }

  /** The first `n` buffered bytes, without consuming them (n <= buffered). */
  private peek(n: number): Buffer {
    if (this.chunks[0]!.length >= n) return this.chunks[0]!.subarray(0, n);
    this.chunks = [Buffer.concat(this.chunks)];
    return this.chunks[0]!.subarray(0, n);
  }

  /** Removes and returns the first `n` buffered bytes (n <= buffered). */
  private consume(n: number): Buffer {
    const first = this.chunks[0]!;
    let out: Buffer;
    if (first.length >= n) {
      out = first.subarray(0, n);
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
    } else {
      const all = Buffer.concat(this.chunks);
      out = all.subarray(0, n);
      this.chunks = all.length > n ? [all.subarray(n)] : [];
    }
    this.buffered -= n;
    return out;
  }
}
