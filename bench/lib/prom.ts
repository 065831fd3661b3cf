// A small reader of the Prometheus text exposition format, enough to take the difference of
// counters and histogram sums between two scrapes of a node (ours at /prom, etcd's at /metrics).
import { request } from 'node:http';

export interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

function parseLabels(text: string): Record<string, string> {
  const labels: Record<string, string> = {};
  const re = /\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*,?/gy;
  let m: RegExpExecArray | null;
  while ((m = re.exec(text)) !== null) {
    labels[m[1] as string] = (m[2] as string).replace(/\\n/g, '\n').replace(/\\"/g, '"').replace(/\\\\/g, '\\');
    if (re.lastIndex >= text.length) break;
  }
  return labels;
}

function parseValue(text: string): number {
  if (text === '+Inf') return Number.POSITIVE_INFINITY;
  if (text === '-Inf') return Number.NEGATIVE_INFINITY;
  if (text === 'NaN') return Number.NaN;
  return Number(text);
}

/** Every sample line (comments and blank lines skipped; a timestamp after the value is ignored). */
export function parsePromText(text: string): Sample[] {
  const out: Sample[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const brace = line.indexOf('{');
    let name: string;
    let labels: Record<string, string> = {};
    let rest: string;
    if (brace >= 0 && brace < (line.indexOf(' ') < 0 ? line.length : line.indexOf(' '))) {
      const close = line.lastIndexOf('}');
      if (close < brace) continue;
      name = line.slice(0, brace);
      labels = parseLabels(line.slice(brace + 1, close));
      rest = line.slice(close + 1).trim();
    } else {
      const space = line.indexOf(' ');
      if (space < 0) continue;
      name = line.slice(0, space);
      rest = line.slice(space + 1).trim();
    }
    const valueText = rest.split(/\s+/)[0];
    if (valueText === undefined || valueText === '') continue;
    out.push({ name, labels, value: parseValue(valueText) });
  }
  return out;
}

/** The sum of every sample named `name` whose labels include `match`. 0 when there is none. */
export function sumOf(samples: readonly Sample[], name: string, match: Readonly<Record<string, string>> = {}): number {
  let total = 0;
  for (const s of samples) {
    if (s.name !== name) continue;
    if (Object.entries(match).every(([k, v]) => s.labels[k] === v)) total += s.value;
  }
  return total;
}

/** GET http://host:port/path as text (loopback scrapes; 5 s timeout). */
export function httpGet(host: string, port: number, path: string, timeoutMs = 5_000): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host, port, path, method: 'GET', timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${host}:${port}${path} timed out after ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end();
  });
}

export async function scrape(host: string, port: number, path: string): Promise<Sample[]> {
  const { status, body } = await httpGet(host, port, path);
  if (status !== 200) throw new Error(`GET ${host}:${port}${path}: HTTP ${status}`);
  return parsePromText(body);
}
