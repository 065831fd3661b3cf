// Runs bench/loadgen.ts in its own process and follows its run: the caller hears when the measured
// window opens and closes (to sample the servers' CPU and metrics at the same moments) and gets
// the result.
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { LoadResult, RunCommand } from '../loadgen.js';

export interface LoadRunHooks {
  /** The warm-up is over and the window opens (epoch ms from the load generator's clock). */
  readonly onMeasuring?: (at: number) => void | Promise<void>;
  /** The window closed; calls still in flight are no longer counted. */
  readonly onMeasured?: (at: number) => void | Promise<void>;
}

export class LoadGenerator {
  private readonly child: ChildProcess;
  private readonly ready: Promise<void>;
  private readonly done: Promise<LoadResult>;
  private hooks: LoadRunHooks = {};
  private hookWork: Promise<void> = Promise.resolve();
  measuringAt: number | undefined;

  constructor() {
    this.child = fork(fileURLToPath(new URL('../loadgen.ts', import.meta.url)), [], {
      execArgv: ['--import', 'tsx'],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    let readyResolve: () => void = () => undefined;
    this.ready = new Promise<void>((resolve) => (readyResolve = resolve));
    this.done = new Promise<LoadResult>((resolve, reject) => {
      this.child.on('message', (m: { event: string; at?: number; message?: string }) => {
        if (m.event === 'ready') readyResolve();
        else if (m.event === 'measuring') {
          this.measuringAt = m.at;
          this.hookWork = this.hookWork.then(() => this.hooks.onMeasuring?.(m.at as number));
        } else if (m.event === 'measured') this.hookWork = this.hookWork.then(() => this.hooks.onMeasured?.(m.at as number));
        else if (m.event === 'result') resolve(m as unknown as LoadResult);
        else if (m.event === 'error') reject(new Error(`load generator failed: ${m.message}`));
      });
      this.child.on('exit', (code, signal) => reject(new Error(`load generator exited (${signal ?? code}) before reporting`)));
    });
    this.done.catch(() => undefined);
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  /** Starts a run; resolves with its result once the window has closed and calls have drained. */
  async run(command: Omit<RunCommand, 'cmd'>, hooks: LoadRunHooks = {}): Promise<LoadResult> {
    this.hooks = hooks;
    await this.ready;
    this.child.send({ cmd: 'run', ...command } satisfies RunCommand);
    const result = await this.done;
    await this.hookWork;
    return result;
  }

  /** Closes an open-ended window (measureMs 0). */
  stop(): void {
    if (this.child.connected) this.child.send({ cmd: 'stop' });
  }

  kill(): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
  }
}

/** One run in a fresh load generator process, killed afterwards. */
export async function runLoad(command: Omit<RunCommand, 'cmd'>, hooks: LoadRunHooks = {}): Promise<LoadResult> {
  const generator = new LoadGenerator();
  try {
    return await generator.run(command, hooks);
  } finally {
    generator.kill();
  }
}
