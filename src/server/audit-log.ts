// The audit log: one JSON line per admin mutation (and per checkpoint download by a non-member),
// allowed or refused, in its own file (ozone.scm.audit.log.file), as Ozone keeps scm-audit.log
// apart from the service log: it answers "who changed what, when" and is kept longer.
//
// Lines are appended through one write stream in call order. The log never stops the node: a
// write that fails is reported once through `onError` and the lines after it are dropped.
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

export class AuditLog {
  private readonly stream: WriteStream;
  private failed = false;

  constructor(
    readonly file: string,
    private readonly nodeId: string,
    private readonly onError: (error: Error) => void,
  ) {
    mkdirSync(dirname(file), { recursive: true });
    this.stream = createWriteStream(file, { flags: 'a', mode: 0o640 });
    this.stream.on('error', (err) => this.fail(err));
  }

  record(entry: AuditEntry): void {
    if (this.failed) return;
    let params: unknown = entry.params;
    const text = JSON.stringify(params);
    if (text.length > MAX_PARAMS_CHARS) params = { truncated: `${text.slice(0, MAX_PARAMS_CHARS)}…` };
    this.stream.write(`${JSON.stringify({ time: new Date().toISOString(), scm: this.nodeId, ...entry, params })}\n`);
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
