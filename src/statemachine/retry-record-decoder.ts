// Reading retry-cache records (RetryCacheRecord, proto/scm_commands.proto) without building their
// outcome: the envelope's fields and where the encoded CommandResult lies in the bytes. Like the
// container decoder, it handles only the canonical form (each field once, with its own wire type,
// varints of at most 8 bytes holding safe integers, an ASCII client id); for anything else it
// returns undefined and the caller uses the general decoder.
import { CanonicalFields, LENGTH_DELIMITED } from './canonical-fields.js';

/** Field numbers → wire type: clientId=1 (string), callId=2, recordedAtMillis=3, result=4 (message), logIndex=5. */
const WIRE_TYPES = [-1, LENGTH_DELIMITED, 0, 0, LENGTH_DELIMITED, 0];
const ALL_FIELDS = 0b111110;

export interface RetryRecordEnvelope {
  readonly clientIdStart: number;
  readonly clientIdEnd: number;
  readonly callId: number;
  readonly recordedAt: number;
  readonly logIndex: number;
  readonly resultStart: number;
  readonly resultEnd: number;
}

const fields = new CanonicalFields(WIRE_TYPES);

export function parseRetryRecordEnvelope(buf: Uint8Array): RetryRecordEnvelope | undefined {
  let clientIdStart = 0;
  let clientIdEnd = 0;
  let resultStart = 0;
  let resultEnd = 0;
  let callId = 0;
  let recordedAt = 0;
  let logIndex = 0;
  fields.start(buf);
  for (let step = fields.next(); step !== 'end'; step = fields.next()) {
    if (step === 'other') return undefined;
    const value = fields.value;
    switch (fields.field) {
      case 1:
        if (!fields.contentsAreAscii()) return undefined;
        clientIdStart = fields.pos;
        clientIdEnd = fields.pos + value;
        fields.skipContents();
        break;
      case 4:
        resultStart = fields.pos;
        resultEnd = fields.pos + value;
        fields.skipContents();
        break;
      case 2:
        callId = value;
        break;
      case 3:
        recordedAt = value;
        break;
      case 5:
        logIndex = value;
        break;
    }
  }
  if (fields.seen !== ALL_FIELDS) return undefined;
  return { clientIdStart, clientIdEnd, callId, recordedAt, logIndex, resultStart, resultEnd };
}

/**
 * Where a CommandResult holding a container (its only field: 1, the ContainerRecord) has the
 * container's bytes, or undefined for any other result or form.
 */
export function containerResultBody(buf: Uint8Array, start: number, end: number): { start: number; end: number } | undefined {
  if (start >= end || buf[start] !== 0x0a) return undefined;
  let pos = start + 1;
  let length = 0;
  let scale = 1;
  for (let n = 0; ; n++) {
    if (n === 5 || pos >= end) return undefined;
    const b = buf[pos++] as number;
    length += (b & 0x7f) * scale;
    scale *= 128;
    if (b < 0x80) break;
  }
  return pos + length === end ? { start: pos, end } : undefined;
}
