// Command-line options of `npm run bench` (bench/scm.bench.ts). Parsing only: no I/O, so the unit
// test in test/bench/ checks it without starting anything.
import { parseArgs } from 'node:util';

export const PARTS = ['load', 'failover', 'restart', 'snapshot'] as const;
export type Part = (typeof PARTS)[number];

export interface BenchOptions {
  /** Which parts run, in the order of PARTS. */
  readonly parts: readonly Part[];
  /** Also run every load row against a 3-member etcd, alternating with ours. */
  readonly compareEtcd: boolean;
  /** Measured seconds per load row (after the warm-up). */
  readonly seconds: number;
  /** Seconds of load before each row's measurement starts. */
  readonly warmupSeconds: number;
  /** Closed-loop callers per row. */
  readonly callers: readonly number[];
  /** gRPC channels (clients) the load generator spreads its callers over. */
  readonly channels: number;
  /** Leader kills in the failover part. */
  readonly failoverRounds: number;
  /** Callers keeping the load during the failover part. */
  readonly failoverCallers: number;
  /** Log entries (one container each) generated for the restart part. */
  readonly restartEntries: number;
  /** Records of the scm.db the snapshot part checkpoints, ships and installs. */
  readonly snapshotRecords: number;
  /** Where the JSON and Markdown results go; undefined: bench/results/. */
  readonly outDir: string | undefined;
  /** Print the results only, write no files. */
  readonly noWrite: boolean;
  /** Our cluster with mutual TLS on every port (the certificates `scm cluster --tls` makes). */
  readonly tls: boolean;
  /** Node options every SCM node of the benchmark is started with (e.g. V8 heap settings). */
  readonly nodeArgs: readonly string[];
  /** Environment every SCM node of the benchmark gets on top of the benchmark's own (e.g. glibc malloc settings). */
  readonly nodeEnv: Readonly<Record<string, string>>;
  /** SCM nodes run the compiled dist/ (as the image does) instead of the sources through tsx. */
  readonly compiled: boolean;
}

export const USAGE = `usage: npm run bench -- [options]

  --only PART[,PART]       load, failover, restart, snapshot (default: all four)
  --compare etcd           also run each load row against a 3-member etcd, alternating (ours, etcd)
  --seconds N              measured seconds per load row (default 15)
  --warmup N               seconds of load before a row is measured (default 3)
  --callers N[,N…]         closed-loop callers per row (default 1,16,64,256)
  --channels N             gRPC channels the load generator spreads its callers over (default 1)
  --failover-rounds N      leader kills (default 10)
  --failover-callers N     callers keeping the load during the kills (default 16)
  --restart-entries N      log entries / containers generated for the restart part (default 1000000)
  --snapshot-records N     scm.db records for the snapshot part (default 1000000)
  --out DIR                results directory (default bench/results)
  --no-write               print the tables, write no result files
  --tls                    our cluster with mutual TLS on every port (the load generator presents
                           the administrator's certificate); etcd stays plaintext
  --node-arg ARG           start every SCM node with this node option (repeatable), e.g.
                           --node-arg=--max-semi-space-size=4 (NODE_OPTIONS would reach the load
                           generator and etcd's side too)
  --node-env NAME=VALUE    start every SCM node with this environment variable (repeatable), e.g.
                           --node-env MALLOC_ARENA_MAX=2, or a configuration key as the Ozone images
                           take it, --node-env OZONE-SITE.XML_ozone.scm.handler.count.key=64 (set on
                           npm, it would reach the load generator and etcd too)
  --dist                   SCM nodes run the compiled dist/ (npm run build first), as the image
                           runs them, instead of src/ through tsx
  -h, --help               this text`;

export class UsageError extends Error {
  override readonly name = 'UsageError';
}

function positiveInt(text: string | undefined, flag: string, fallback: number): number {
  if (text === undefined) return fallback;
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(Number(text)) || Number(text) < 1) {
    throw new UsageError(`${flag} needs a positive integer, got ${JSON.stringify(text)}`);
  }
  return Number(text);
}

function nonNegativeNumber(text: string | undefined, flag: string, fallback: number): number {
  if (text === undefined) return fallback;
  const n = Number(text);
  if (text.trim() === '' || !Number.isFinite(n) || n < 0) throw new UsageError(`${flag} needs a number of seconds >= 0, got ${JSON.stringify(text)}`);
  return n;
}

function positiveSeconds(text: string | undefined, flag: string, fallback: number): number {
  const n = nonNegativeNumber(text, flag, fallback);
  if (n === 0) throw new UsageError(`${flag} must be more than 0`);
  return n;
}

function list(text: string | string[] | undefined): string[] | undefined {
  if (text === undefined) return undefined;
  const parts = (Array.isArray(text) ? text : [text]).flatMap((t) => t.split(',')).map((t) => t.trim());
  return parts.filter((t) => t !== '');
}

/** Parses the arguments after `npm run bench --`; throws UsageError with a message for bad ones. */
function nodeArgs(values: readonly string[] | undefined): string[] {
  const out = values === undefined ? [] : [...values];
  for (const a of out) if (!a.startsWith('-')) throw new UsageError(`--node-arg: ${JSON.stringify(a)} is not a node option (write --node-arg=--flag=value)`);
  return out;
}

function nodeEnv(values: readonly string[] | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const pair of values ?? []) {
    // Names as the Ozone images' configuration variables too (OZONE-SITE.XML_<key>): dots and dashes.
    const m = /^([A-Za-z_][A-Za-z0-9_.-]*)=(.*)$/s.exec(pair);
    if (m === null) throw new UsageError(`--node-env: ${JSON.stringify(pair)} is not NAME=VALUE`);
    out[m[1] as string] = m[2] as string;
  }
  return out;
}

export function parseBenchArgs(argv: readonly string[]): BenchOptions | 'help' {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      strict: true,
      allowPositionals: false,
      options: {
        only: { type: 'string', multiple: true },
        compare: { type: 'string' },
        seconds: { type: 'string' },
        warmup: { type: 'string' },
        callers: { type: 'string' },
        channels: { type: 'string' },
        'failover-rounds': { type: 'string' },
        'failover-callers': { type: 'string' },
        'restart-entries': { type: 'string' },
        'snapshot-records': { type: 'string' },
        out: { type: 'string' },
        'no-write': { type: 'boolean' },
        tls: { type: 'boolean' },
        'node-arg': { type: 'string', multiple: true },
        'node-env': { type: 'string', multiple: true },
        dist: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const v = parsed.values;
  if (v.help === true) return 'help';

  const only = list(v.only);
  let parts: Part[] = [...PARTS];
  if (only !== undefined) {
    if (only.length === 0) throw new UsageError('--only needs one or more of ' + PARTS.join(', '));
    for (const p of only) {
      if (!(PARTS as readonly string[]).includes(p)) throw new UsageError(`--only: unknown part ${JSON.stringify(p)} (expected ${PARTS.join(', ')})`);
    }
    parts = PARTS.filter((p) => only.includes(p));
  }
  if (v.compare !== undefined && v.compare !== 'etcd') throw new UsageError(`--compare: only etcd is supported, got ${JSON.stringify(v.compare)}`);

  const callersText = list(v.callers);
  const callers = callersText === undefined ? [1, 16, 64, 256] : callersText.map((c) => positiveInt(c, '--callers', 0));
  if (callers.length === 0) throw new UsageError('--callers needs one or more positive integers, e.g. 1,16');

  return {
    parts,
    compareEtcd: v.compare === 'etcd',
    seconds: positiveSeconds(v.seconds, '--seconds', 15),
    warmupSeconds: nonNegativeNumber(v.warmup, '--warmup', 3),
    callers,
    channels: positiveInt(v.channels, '--channels', 1),
    failoverRounds: positiveInt(v['failover-rounds'], '--failover-rounds', 10),
    failoverCallers: positiveInt(v['failover-callers'], '--failover-callers', 16),
    restartEntries: positiveInt(v['restart-entries'], '--restart-entries', 1_000_000),
    snapshotRecords: positiveInt(v['snapshot-records'], '--snapshot-records', 1_000_000),
    outDir: v.out,
    noWrite: v['no-write'] === true,
    tls: v.tls === true,
    nodeArgs: nodeArgs(v['node-arg']),
    nodeEnv: nodeEnv(v['node-env']),
    compiled: v.dist === true,
  };
}
