// Parsers for configuration values in Hadoop's notation: durations with a unit suffix (`5s`,
// `100ms`, `30m`), sizes with binary units (`64MB`), booleans, integers, ports and host:port.
// Every parser throws ConfigValueError naming the key and the offending value, so an operator can
// find the line to fix without reading our source.

export class ConfigValueError extends Error {
  constructor(
    readonly key: string,
    readonly value: string,
    readonly reason: string,
  ) {
    super(`invalid value ${JSON.stringify(value)} for configuration key ${key}: ${reason}`);
    this.name = 'ConfigValueError';
  }
}

const NS_PER_UNIT: Readonly<Record<string, bigint>> = {
  ns: 1n,
  us: 1_000n,
  ms: 1_000_000n,
  s: 1_000_000_000n,
  m: 60_000_000_000n,
  h: 3_600_000_000_000n,
  d: 86_400_000_000_000n,
};

export type DurationUnit = 'ms' | 's';

/**
 * A Hadoop time duration in milliseconds. A bare number is in `defaultUnit` (the unit the key was
 * declared with in Ozone). Sub-millisecond results are rejected rather than silently rounded.
 */
export function parseDurationMs(key: string, value: string, defaultUnit: DurationUnit): number {
  const match = /^(\d+)\s*([a-zA-Z]*)$/.exec(value.trim());
  if (match === null) {
    throw new ConfigValueError(key, value, 'expected a non-negative whole number with an optional unit (ns, us, ms, s, m, h, d)');
  }
  const unit = (match[2] ?? '').toLowerCase() || defaultUnit;
  const nsPerUnit = NS_PER_UNIT[unit];
  if (nsPerUnit === undefined) {
    throw new ConfigValueError(key, value, `unknown time unit "${match[2]}" (use ns, us, ms, s, m, h or d)`);
  }
  const ns = BigInt(match[1] ?? '0') * nsPerUnit;
  if (ns % 1_000_000n !== 0n) {
    throw new ConfigValueError(key, value, 'durations below one millisecond are not supported');
  }
  const ms = ns / 1_000_000n;
  if (ms > BigInt(Number.MAX_SAFE_INTEGER)) throw new ConfigValueError(key, value, 'duration is too large');
  return Number(ms);
}

const BYTES_PER_UNIT: Readonly<Record<string, number>> = {
  '': 1,
  b: 1,
  k: 1024,
  kb: 1024,
  m: 1024 ** 2,
  mb: 1024 ** 2,
  g: 1024 ** 3,
  gb: 1024 ** 3,
  t: 1024 ** 4,
  tb: 1024 ** 4,
  p: 1024 ** 5,
  pb: 1024 ** 5,
};

/** A Hadoop storage size in bytes: `64MB`, `4 mb`, `1.5GB`, `1024` (bytes). Units are binary, as Ozone's StorageUnit. */
export function parseSizeBytes(key: string, value: string): number {
  const match = /^(\d+(?:\.\d+)?)\s*([a-zA-Z]*)$/.exec(value.trim());
  if (match === null) {
    throw new ConfigValueError(key, value, 'expected a non-negative size such as 64MB, 4KB or 1024');
  }
  const multiplier = BYTES_PER_UNIT[(match[2] ?? '').toLowerCase()];
  if (multiplier === undefined) {
    throw new ConfigValueError(key, value, `unknown size unit "${match[2]}" (use B, KB, MB, GB, TB or PB)`);
  }
  const bytes = Math.floor(Number(match[1]) * multiplier);
  if (!Number.isSafeInteger(bytes)) throw new ConfigValueError(key, value, 'size is too large');
  return bytes;
}

export function parseBoolean(key: string, value: string): boolean {
  const lower = value.trim().toLowerCase();
  if (lower === 'true') return true;
  if (lower === 'false') return false;
  throw new ConfigValueError(key, value, 'expected true or false');
}

export function parseInteger(key: string, value: string, min: number, max: number): number {
  const text = value.trim();
  if (!/^-?\d+$/.test(text)) throw new ConfigValueError(key, value, 'expected a whole number');
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < min || n > max) {
    throw new ConfigValueError(key, value, `expected a whole number from ${min} to ${max}`);
  }
  return n;
}

export function parsePort(key: string, value: string): number {
  const text = value.trim();
  if (!/^\d+$/.test(text) || Number(text) < 1 || Number(text) > 65535) {
    throw new ConfigValueError(key, value, 'expected a port number from 1 to 65535');
  }
  return Number(text);
}

export function parseEnum<T extends string>(key: string, value: string, allowed: readonly T[]): T {
  const upper = value.trim().toUpperCase();
  const found = allowed.find((option) => option === upper);
  if (found === undefined) throw new ConfigValueError(key, value, `expected one of ${allowed.join(', ')}`);
  return found;
}

// A DNS name or an IPv4 literal; IPv6 literals go in brackets in host:port form.
const HOST_PATTERN = /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;
const IPV6_PATTERN = /^[0-9A-Fa-f:.]+$/;

export function parseHost(key: string, value: string): string {
  const host = value.trim();
  if (host.length === 0 || host.length > 253) throw new ConfigValueError(key, value, 'expected a host name or IP address');
  if (HOST_PATTERN.test(host)) return host;
  if (host.startsWith('[') && host.endsWith(']') && IPV6_PATTERN.test(host.slice(1, -1))) return host;
  throw new ConfigValueError(key, value, 'expected a host name or IP address');
}

export interface HostPort {
  readonly host: string;
  readonly port: number;
}

/** `host:port` (or `[v6]:port`). With `defaultPort`, a bare host is accepted too. */
export function parseHostPort(key: string, value: string, defaultPort?: number): HostPort {
  const text = value.trim();
  const match = /^(\[[^\]]+\]|[^:]+)(?::([^:]*))?$/.exec(text);
  if (match === null) throw new ConfigValueError(key, value, 'expected host:port');
  const host = parseHost(key, match[1] ?? '');
  if (match[2] === undefined) {
    if (defaultPort === undefined) throw new ConfigValueError(key, value, 'expected host:port (the port is missing)');
    return { host, port: defaultPort };
  }
  return { host, port: parsePort(key, match[2]) };
}

/** Comma-separated list, entries trimmed, empty entries dropped (Hadoop's getTrimmedStrings). */
export function parseList(value: string): string[] {
  return value
    .split(',')
    .map((part) => part.trim())
    .filter((part) => part.length > 0);
}

/** A `${name}` reference inside a configuration value: `text.slice(start, end)` is `${name}`. */
export interface VariableReference {
  readonly start: number;
  readonly end: number;
  readonly name: string;
}

/**
 * The first variable reference in `text`, found the way Hadoop's Configuration.findSubVariable does:
 * `${` followed by one or more characters other than `}`, `$` and space, then `}`. A `$` or a space
 * inside ends that candidate and the search goes on after it, so in `${a.${b}}` the inner `${b}` is
 * found first (once it is replaced, the outer reference is found on the next call). Anything else
 * (`${}`, `${a b}`, a lone `$`) is literal text.
 */
export function findVariableReference(text: string): VariableReference | undefined {
  let from = 0;
  for (;;) {
    const open = text.indexOf('${', from);
    if (open < 0) return undefined;
    const nameStart = open + 2;
    let i = nameStart;
    while (i < text.length) {
      const c = text[i];
      if (c === '}' || c === '$' || c === ' ') break;
      i++;
    }
    if (i >= text.length) return undefined;
    if (text[i] === '}' && i > nameStart) return { start: open, end: i + 1, name: text.slice(nameStart, i) };
    // `${}`, or a `$` / space inside: not a reference; look again from the character that stopped us
    // (a `$` there may itself start one).
    from = text[i] === '$' ? i : i + 1;
  }
}

/** `${env.NAME}`, `${env.NAME:-fallback}` or `${env.NAME-fallback}`, split as Hadoop does. */
export interface EnvironmentReference {
  readonly variable: string;
  /** Used when the variable is unset (`-`), or unset or empty (`:-`). */
  readonly fallback?: { readonly text: string; readonly whenEmpty: boolean };
}

/**
 * Splits the name of an `env.` reference. As in Hadoop, the first `:-` or `-` ends the variable name
 * and starts the fallback, so a variable whose name contains `-` cannot be referenced. Returns
 * undefined when `name` is not an environment reference.
 */
export function parseEnvironmentReference(name: string): EnvironmentReference | undefined {
  if (!name.startsWith('env.') || name.length <= 4) return undefined;
  const rest = name.slice(4);
  for (let i = 0; i < rest.length; i++) {
    if (rest[i] === ':' && rest[i + 1] === '-') {
      return { variable: rest.slice(0, i), fallback: { text: rest.slice(i + 2), whenEmpty: true } };
    }
    if (rest[i] === '-') return { variable: rest.slice(0, i), fallback: { text: rest.slice(i + 1), whenEmpty: false } };
  }
  return { variable: rest };
}
