// Structured JSON logs (pino), one child logger per node carrying `nodeId`, so the logs of three
// nodes interleaved in one terminal, one test process or one log store can be told apart.
// The level comes from the caller, else the SCM_LOG_LEVEL environment variable, else `info`.
// Written synchronously to stdout: the last line before a fatal exit must not be lost.
import { pino, type DestinationStream, type Logger } from 'pino';

export type { DestinationStream, Logger } from 'pino';

export const LOG_LEVEL_ENV = 'SCM_LOG_LEVEL';
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export interface LoggerOptions {
  /** null until the configuration naming the node has been read (a start that fails reading it). */
  readonly nodeId: string | null;
  /** Overrides SCM_LOG_LEVEL. */
  readonly level?: string;
  /** Where JSON lines go; stdout when absent. Tests pass a stream to capture them. */
  readonly destination?: DestinationStream;
  /** Environment to read SCM_LOG_LEVEL from; process.env when absent. */
  readonly env?: NodeJS.ProcessEnv;
}

/** Resolves the log level: explicit option, then SCM_LOG_LEVEL, then info. Rejects unknown names. */
export function resolveLogLevel(explicit: string | undefined, env: NodeJS.ProcessEnv = process.env): LogLevel {
  const fromEnv = env[LOG_LEVEL_ENV];
  const [source, raw] =
    explicit !== undefined ? ['log level option', explicit] : fromEnv !== undefined && fromEnv !== '' ? [LOG_LEVEL_ENV, fromEnv] : ['default', 'info'];
  const level = raw.trim().toLowerCase();
  if (!(LOG_LEVELS as readonly string[]).includes(level)) {
    throw new Error(`invalid ${source} ${JSON.stringify(raw)}: expected one of ${LOG_LEVELS.join(', ')}`);
  }
  return level as LogLevel;
}

function errorOwnMessage(err: unknown): unknown {
  const serialized = pino.stdSerializers.err(err as Error) as unknown;
  if (err instanceof Error && typeof serialized === 'object' && serialized !== null) return { ...serialized, message: err.message };
  return serialized;
}

/** A pino logger writing JSON lines, bound to one node: every line carries `nodeId`. */
export function createLogger(options: LoggerOptions): Logger {
  if (options.nodeId !== null && options.nodeId.length === 0) throw new Error('createLogger needs a non-empty nodeId');
  const level = resolveLogLevel(options.level, options.env);
  const rootOptions = {
    level,
    // ISO timestamps and level names read better than epoch millis and numbers for operators,
    // and log stores parse both.
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label: string) => ({ level: label }) },
    // pino's err serializer appends every cause's message to the error's; ours already say what
    // their cause was (`… failed: <cause's message>`), so that printed each cause twice. The
    // message is the error's own; the stack still shows the causes.
    serializers: { err: errorOwnMessage },
  };
  const root = pino(rootOptions, options.destination ?? pino.destination({ dest: 1, sync: true }));
  return root.child({ nodeId: options.nodeId });
}
