// java.util.Properties text format, as Ozone's VERSION file (src/server) and Ratis's raft-meta
// (src/storage) use it. Imports nothing of ours, so every folder may use it.
// Reading follows Properties.load: `#`/`!` comments, `=`, `:` or whitespace as separator, backslash
// line continuation, escapes \t \n \r \f \uXXXX (any other escaped char stands for itself).
// Writing follows Properties.store: a `#<date>` comment, then `key=value` lines with the characters
// that would change meaning escaped and non-ASCII written as \uXXXX, so Java reads back the same.

export class PropertiesFormatError extends Error {
  constructor(
    readonly source: string,
    readonly line: number,
    reason: string,
  ) {
    super(`${source}:${line}: ${reason}`);
    this.name = 'PropertiesFormatError';
  }
}

/** Splits into logical lines: joins continuations, drops comments and blank lines. */
function logicalLines(text: string): { text: string; line: number }[] {
  const physical = text.split(/\r\n|\r|\n/);
  const out: { text: string; line: number }[] = [];
  let pending: { text: string; line: number } | null = null;
  for (let i = 0; i < physical.length; i++) {
    const raw = physical[i] ?? '';
    const stripped = raw.replace(/^[ \t\f]+/, '');
    if (pending === null) {
      if (stripped.length === 0 || stripped.startsWith('#') || stripped.startsWith('!')) continue;
      pending = { text: '', line: i + 1 };
    }
    // A line continues when it ends in an odd number of backslashes.
    const trailing = /\\*$/.exec(stripped)?.[0].length ?? 0;
    if (trailing % 2 === 1) {
      pending.text += stripped.slice(0, -1);
      continue;
    }
    pending.text += stripped;
    out.push(pending);
    pending = null;
  }
  if (pending !== null) out.push(pending);
  return out;
}

function unescape(text: string, source: string, line: number): string {
  let out = '';
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (ch !== '\\') {
      out += ch;
      continue;
    }
    const next = text[++i];
    if (next === undefined) break;
    if (next === 't') out += '\t';
    else if (next === 'n') out += '\n';
    else if (next === 'r') out += '\r';
    else if (next === 'f') out += '\f';
    else if (next === 'u') {
      const hex = text.slice(i + 1, i + 5);
      if (!/^[0-9A-Fa-f]{4}$/.test(hex)) throw new PropertiesFormatError(source, line, `malformed \\u escape "\\u${hex}"`);
      out += String.fromCharCode(parseInt(hex, 16));
      i += 4;
    } else out += next;
  }
  return out;
}

/** Parses properties text into an ordered map. Later duplicates win, as in Java. */
export function parseProperties(text: string, source = 'properties'): Map<string, string> {
  const result = new Map<string, string>();
  for (const { text: lineText, line } of logicalLines(text)) {
    // The key ends at the first unescaped '=', ':' or whitespace.
    let keyEnd = 0;
    while (keyEnd < lineText.length) {
      const ch = lineText[keyEnd];
      if (ch === '\\') {
        keyEnd += 2;
        continue;
      }
      if (ch === '=' || ch === ':' || ch === ' ' || ch === '\t' || ch === '\f') break;
      keyEnd++;
    }
    const key = unescape(lineText.slice(0, Math.min(keyEnd, lineText.length)), source, line);
    let rest = lineText.slice(keyEnd).replace(/^[ \t\f]+/, '');
    if (rest.startsWith('=') || rest.startsWith(':')) rest = rest.slice(1).replace(/^[ \t\f]+/, '');
    result.set(key, unescape(rest, source, line));
  }
  return result;
}

function escape(text: string, isKey: boolean): string {
  let out = '';
  for (let i = 0; i < text.length; i++) {
    const ch = text[i] ?? '';
    const code = ch.charCodeAt(0);
    if (ch === '\\') out += '\\\\';
    else if (ch === '\t') out += '\\t';
    else if (ch === '\n') out += '\\n';
    else if (ch === '\r') out += '\\r';
    else if (ch === '\f') out += '\\f';
    else if (ch === '=' || ch === ':' || ch === '#' || ch === '!') out += `\\${ch}`;
    else if (ch === ' ' && (isKey || i === 0)) out += '\\ ';
    else if (code < 0x20 || code > 0x7e) out += `\\u${code.toString(16).toUpperCase().padStart(4, '0')}`;
    else out += ch;
  }
  return out;
}

const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** java.util.Date#toString in UTC: `Fri Feb 13 10:58:02 UTC 2020`. */
export function javaDateString(date: Date): string {
  const pad = (n: number): string => String(n).padStart(2, '0');
  return `${DAYS[date.getUTCDay()]} ${MONTHS[date.getUTCMonth()]} ${pad(date.getUTCDate())} ${pad(date.getUTCHours())}:${pad(date.getUTCMinutes())}:${pad(date.getUTCSeconds())} UTC ${date.getUTCFullYear()}`;
}

/**
 * Serializes in Properties.store form, entries in the given order. The first line is a comment:
 * `comment` as given, or a date as Properties.store writes it.
 */
export function formatProperties(entries: Iterable<readonly [string, string]>, comment: Date | string = new Date()): string {
  let out = `#${typeof comment === 'string' ? comment : javaDateString(comment)}\n`;
  for (const [key, value] of entries) {
    if (key.length === 0) throw new Error('a properties key may not be empty');
    out += `${escape(key, true)}=${escape(value, false)}\n`;
  }
  return out;
}
