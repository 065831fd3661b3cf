// The audit log: one JSON line per admin mutation (and per checkpoint download by a non-member),
// allowed or refused, in its own file (ozone.scm.audit.log.file), as Ozone keeps scm-audit.log
// apart from the service log: it answers "who changed what, when" and is kept longer.
//
// Lines are appended through one write stream in call order. The log never stops the node: a
// write that fails is reported once through `onError` and the lines after it are dropped. Nor may
// it fill memory: when more than maxBufferedBytes wait for the disk (a flood of refused calls on a
// slow disk), lines are dropped and counted, and once the disk catches up one line says how many.
import { mkdirSync, createWriteStream, type WriteStream } from 'node:fs';
import { dirname } from 'node:path';

export interface AuditEntry {
  /** The gRPC method: TransferLeadership, AddScm, …, or DownloadCheckpoint. */
  readonly method: string;
  /** The caller's certificate name (CN), or null on a plaintext connection. */
  readonly identity: string | null;
  /** The SCM node the certificate names, if it is a node certificate. */
  readonly node: string | null;
  readonly fingerprint: string | null;
  /** The caller's address as gRPC reports it (ipv4:1.2.3.4:5678). */
  readonly peer: string;
  readonly allowed: boolean;
  /** Why it was allowed or refused: `administrator`, `node adding itself`, `not an administrator`, … */
  readonly reason: string;
  /** The gRPC status the call ended with (OK, NOT_FOUND, …; PERMISSION_DENIED when refused). */
  readonly outcome: string;
  /** The request's fields (the retry identifiers left out), as the caller sent them. */
  readonly params: Record<string, unknown>;
}

/** Longest JSON of a request's fields kept in a line; a larger request is cut (and says so). */
const MAX_PARAMS_CHARS = 2048;
/** Bytes of lines waiting for the disk beyond which new lines are dropped (and counted). */
export const DEFAULT_AUDIT_MAX_BUFFERED_BYTES = 8 * 1024 * 1024;

export class AuditLog {
  private readonly stream: WriteStream;
  private failed = false;
  private dropped = 0;

  constructor(
    readonly file: string,
    private readonly nodeId: string,
    private readonly onError: (error: Error) => void,
    private readonly maxBufferedBytes = DEFAULT_AUDIT_MAX_BUFFERED_BYTES,
  ) {
    mkdirSync(dirname(file), { recursive: true });
    this.stream = createWriteStream(file, { flags: 'a', mode: 0o640 });
    this.stream.on('error', (err) => this.fail(err));
  }

  record(entry: AuditEntry): void {
    if (this.failed) return;
    if (this.stream.writableLength > this.maxBufferedBytes) {
      this.dropped++;
      return;
    }
    const time = new Date().toISOString();
    if (this.dropped > 0) {
      this.stream.write(`${JSON.stringify({ time, scm: this.nodeId, dropped: this.dropped, reason: `more than ${this.maxBufferedBytes} bytes of audit lines were waiting for the disk` })}\n`);
      this.dropped = 0;
    }
    let params: unknown = entry.params;
    const text = JSON.stringify(params);
    if (text.length > MAX_PARAMS_CHARS) params = { truncated: `${text.slice(0, MAX_PARAMS_CHARS)}…` };
    this.stream.write(`${JSON.stringify({ time, scm: this.nodeId, ...entry, params })}\n`);
  }

  /** Lines dropped since the last line written (see maxBufferedBytes). */
  get droppedLines(): number {
    return this.dropped;
  }

  private fail(err: Error): void {
    if (this.failed) return;
    this.failed = true;
    this.onError(err);
  }

  /** Flushes and closes the file. */
  close(): Promise<void> {
    return new Promise((resolve) => {
      if (this.stream.closed || this.stream.destroyed) {
        resolve();
        return;
      }
      this.stream.end(() => resolve());
    });
  }
}
