// The node processes of `scm cluster`. Each writes straight into its own log file (not through this
// process, so its output survives this process dying), and has a pipe on its stdin and
// `--stop-on-stdin-eof`: if this process is killed outright the pipe closes and every node stops in
// order by itself. When a node exits, the reason is read back from its log (the last fatal or error
// line it wrote in this run), so the terminal says why, not only that.
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, openSync, readSync, statSync } from 'node:fs';

export interface NodeExit {
  readonly nodeId: string;
  /** "code 1" or "SIGKILL". */
  readonly how: string;
  /** What the node said last before exiting (a fatal or error line), when it said anything. */
  readonly reason: string | undefined;
  readonly logFile: string;
  /** Whether this process asked it to stop. */
  readonly requested: boolean;
}

/** How to run this same CLI in a child process: the same Node, loader flags and script. */
export interface SelfCommand {
  readonly command: string;
  readonly args: readonly string[];
}

/** The most this reads back from a log to find the reason of an exit. */
const TAIL_BYTES = 256 * 1024;

function readFrom(file: string, offset: number): string {
  if (!existsSync(file)) return '';
  const size = statSync(file).size;
  const start = Math.max(offset, size - TAIL_BYTES);
  if (size <= start) return '';
  const buffer = Buffer.alloc(size - start);
  const fd = openSync(file, 'r');
  try {
    readSync(fd, buffer, 0, buffer.length, start);
  } finally {
    closeSync(fd);
  }
  return buffer.toString('utf8');
}

/**
 * The last fatal or error message in `text` (JSON lines as a node writes them); else its last line
 * that is neither JSON nor a stack frame (a crash before the logger existed); else undefined.
 */
export function lastProblem(text: string): string | undefined {
  const lines = text.split('\n').filter((line) => line.trim().length > 0);
  for (let i = lines.length - 1; i >= 0; i--) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(lines[i] ?? '');
    } catch {
      continue;
    }
    const line = parsed as { level?: unknown; msg?: unknown; err?: { message?: unknown } };
    if (line.level !== 'fatal' && line.level !== 'error') continue;
    const msg = typeof line.msg === 'string' ? line.msg : '';
    const err = typeof line.err?.message === 'string' ? line.err.message : '';
    // msg usually holds the error's message already (a fatal start logs it as msg and err).
    const head = err.split(': ')[0] ?? '';
    return err !== '' && !msg.includes(head) ? `${msg}: ${err}` : msg;
  }
  // Not a stack frame: the message of the error above its frames.
  return [...lines].reverse().find((line) => !line.trimStart().startsWith('{') && !/^\s+at /.test(line));
}

export class LocalProcesses {
  private readonly children = new Map<string, { child: ChildProcess; exited: Promise<NodeExit> }>();
  private readonly stopRequested = new Set<string>();
  private readonly listeners: ((exit: NodeExit) => void)[] = [];

  constructor(
    private readonly self: SelfCommand,
    private readonly env: NodeJS.ProcessEnv,
  ) {}

  /** Starts `scm start ARGS` for a node, appending its output to `logFile`. */
  start(nodeId: string, args: readonly string[], logFile: string): void {
    if (this.children.has(nodeId)) throw new Error(`internal: ${nodeId} is already started`);
    const offset = existsSync(logFile) ? statSync(logFile).size : 0;
    const fd = openSync(logFile, 'a');
    let child: ChildProcess;
    try {
      // Detached: a Ctrl-C in the terminal reaches this process only, which stops the nodes once,
      // in order (a node that also got the terminal's SIGINT would take the SIGTERM that follows
      // as an operator's second, impatient signal).
      child = spawn(this.self.command, [...this.self.args, 'start', ...args, '--stop-on-stdin-eof'], { env: this.env, stdio: ['pipe', fd, fd], detached: true });
    } finally {
      closeSync(fd); // the child holds its own copy
    }
    const exited = new Promise<NodeExit>((resolve) => {
      const finish = (how: string, spawnError?: Error): void => {
        const reason = spawnError !== undefined ? `cannot run ${this.self.command}: ${spawnError.message}` : lastProblem(readFrom(logFile, offset));
        const exit: NodeExit = { nodeId, how, reason, logFile, requested: this.stopRequested.has(nodeId) };
        this.children.delete(nodeId);
        for (const listener of this.listeners) listener(exit);
        resolve(exit);
      };
      child.once('exit', (code, signal) => finish(signal ?? `code ${String(code)}`));
      child.once('error', (err) => {
        if (child.exitCode === null && child.signalCode === null && child.pid === undefined) finish('not started', err);
      });
    });
    // A pipe whose reader is gone must not take this process down (EPIPE on stdin).
    child.stdin?.on('error', () => undefined);
    this.children.set(nodeId, { child, exited });
  }

  onExit(listener: (exit: NodeExit) => void): void {
    this.listeners.push(listener);
  }

  running(): string[] {
    return [...this.children.keys()];
  }

  /** Resolves once no node process is left. */
  async allExited(): Promise<void> {
    while (this.children.size > 0) await Promise.race([...this.children.values()].map((c) => c.exited));
  }

  /** SIGTERM to every node, SIGKILL to those still running after `graceMs`. */
  async stopAll(graceMs = 10_000): Promise<void> {
    const running = [...this.children.entries()];
    for (const [nodeId, { child }] of running) {
      this.stopRequested.add(nodeId);
      child.kill('SIGTERM');
    }
    const kill = setTimeout(() => this.killAll(), graceMs);
    try {
      await Promise.all(running.map(([, c]) => c.exited));
    } finally {
      clearTimeout(kill);
    }
  }

  /** SIGKILL to every node (a second Ctrl-C: the operator will not wait). */
  killAll(): void {
    for (const [nodeId, { child }] of this.children) {
      this.stopRequested.add(nodeId);
      child.kill('SIGKILL');
    }
  }
}
