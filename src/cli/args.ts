// Parses one command's arguments with node:util's parseArgs (`--name value`, `--name=value`, `-n
// value`, `-nvalue`, flags, `--` ending options), then checks what parseArgs leaves to the caller:
// unknown options (with a "did you mean"), a value missing or given to a flag, an option given
// twice, whole numbers, choices, required options and the positional count. Everything wrong is a
// UsageError naming the culprit.
import { parseArgs as parseTokens } from 'node:util';
import { UsageError, type CliIo, type CommandContext, type CommandSpec, type OptionSpec, type ParsedArgs } from './command.js';
import { didYouMean } from './suggest.js';

const HELP_OPTIONS = new Set(['--help', '-h']);

/** Whether argv asks for help (before a `--`, which ends options). */
export function wantsHelp(argv: readonly string[]): boolean {
  for (const arg of argv) {
    if (arg === '--') return false;
    if (HELP_OPTIONS.has(arg)) return true;
  }
  return false;
}

const optionLabel = (spec: OptionSpec): string => `--${spec.name}`;

function parseValue(command: CommandSpec, spec: OptionSpec, raw: string): string | number {
  if (spec.kind === 'integer') {
    if (!/^\d+$/.test(raw) || !Number.isSafeInteger(Number(raw))) {
      throw new UsageError(`${optionLabel(spec)} expects a non-negative whole number, got ${JSON.stringify(raw)}`, command);
    }
    return Number(raw);
  }
  if (spec.choices !== undefined) {
    const match = spec.choices.find((choice) => choice.toLowerCase() === raw.toLowerCase());
    if (match === undefined) throw new UsageError(`${optionLabel(spec)} must be one of ${spec.choices.join(', ')}, got ${JSON.stringify(raw)}`, command);
    return match;
  }
  if (raw.length === 0) throw new UsageError(`${optionLabel(spec)} needs a non-empty value`, command);
  return raw;
}

export function parseArgs(command: CommandSpec, args: readonly string[]): ParsedArgs {
  const config: Record<string, { type: 'string' | 'boolean'; short?: string }> = {};
  for (const spec of command.options) {
    config[spec.name] = { type: spec.kind === 'boolean' ? 'boolean' : 'string', ...(spec.short !== undefined ? { short: spec.short } : {}) };
    for (const alias of spec.aliases ?? []) config[alias] = { type: config[spec.name]!.type };
  }
  // Not strict: parseArgs' own messages name neither the command nor a likely intended option.
  const { tokens } = parseTokens({ args: [...args], options: config, strict: false, allowPositionals: true, tokens: true });
  const options = new Map<string, string | number | boolean>();
  const given = new Set<string>();
  const positionals: string[] = [];
  for (const token of tokens) {
    if (token.kind === 'positional') {
      positionals.push(token.value);
      continue;
    }
    if (token.kind !== 'option') continue;
    const spec = command.options.find((option) => option.name === token.name || (option.aliases ?? []).includes(token.name));
    if (spec === undefined) {
      const known = command.options.flatMap((o) => [`--${o.name}`, ...(o.short !== undefined ? [`-${o.short}`] : [])]);
      throw new UsageError(`unknown option ${token.rawName}${didYouMean(token.rawName.startsWith('--') ? token.rawName : `--${token.name}`, known)}`, command);
    }
    const label = token.rawName === optionLabel(spec) ? token.rawName : `${token.rawName} (${optionLabel(spec)})`;
    if (given.has(spec.name)) throw new UsageError(`${label} given more than once`, command);
    given.add(spec.name);
    if (spec.kind === 'boolean') {
      if (token.value !== undefined) throw new UsageError(`${label} is a flag and takes no value`, command);
      options.set(spec.name, true);
      continue;
    }
    // parseArgs takes the next word as the value even when it is another option: `--count --all`.
    if (token.value === undefined || (!token.inlineValue && token.value.startsWith('-') && token.value !== '-')) {
      throw new UsageError(`${label} needs a value (${spec.valueName ?? spec.kind})`, command);
    }
    options.set(spec.name, parseValue(command, spec, token.value));
  }
  for (const spec of command.options) {
    if (options.has(spec.name)) continue;
    if (spec.required === true) throw new UsageError(`${optionLabel(spec)} is required`, command);
    if (spec.default !== undefined) options.set(spec.name, spec.default);
  }
  const expected = command.positionals ?? [];
  if (positionals.length < expected.length) {
    throw new UsageError(`missing argument ${expected.slice(positionals.length).map((p) => p.name.toUpperCase()).join(' ')}`, command);
  }
  if (positionals.length > expected.length) {
    throw new UsageError(`unexpected argument ${JSON.stringify(positionals[expected.length])}`, command);
  }
  return { options, given, positionals };
}

export function makeContext(command: CommandSpec, args: ParsedArgs, io: CliIo): CommandContext {
  const value = (name: string): string | number | boolean | undefined => {
    if (!command.options.some((option) => option.name === name)) throw new Error(`internal: command ${command.path.join(' ')} has no option --${name}`);
    return args.options.get(name);
  };
  return {
    command,
    args,
    io,
    string: (name) => {
      const v = value(name);
      return v === undefined ? undefined : String(v);
    },
    requiredString: (name) => {
      const v = value(name);
      if (v === undefined) throw new UsageError(`--${name} is required`, command);
      return String(v);
    },
    integer: (name) => {
      const v = value(name);
      return typeof v === 'number' ? v : undefined;
    },
    flag: (name) => value(name) === true,
    given: (name) => {
      value(name);
      return args.given.has(name);
    },
    positional: (index) => {
      const v = args.positionals[index];
      if (v === undefined) throw new Error(`internal: no positional ${index}`);
      return v;
    },
  };
}

/** `Usage: scm admin container info CONTAINER_ID [options]` plus one line per option. */
export function usage(command: CommandSpec): string {
  const positionals = (command.positionals ?? []).map((p) => ` ${p.name.toUpperCase()}`).join('');
  const lines = [`Usage: scm ${command.path.join(' ')}${positionals}${command.options.length > 0 ? ' [options]' : ''}`, `  ${command.summary}`];
  for (const p of command.positionals ?? []) lines.push(`  ${p.name.toUpperCase().padEnd(32)} ${p.description}`);
  for (const option of command.options) {
    const names = `${option.short !== undefined ? `-${option.short}, ` : '    '}--${[option.name, ...(option.aliases ?? [])].join(', --')}`;
    const left = option.kind === 'boolean' ? names : `${names} ${option.valueName ?? option.kind.toUpperCase()}`;
    const extra = [
      option.choices !== undefined ? `one of ${option.choices.join(', ')}` : '',
      option.default !== undefined ? `default ${String(option.default)}` : '',
      option.required === true ? 'required' : '',
    ]
      .filter((s) => s.length > 0)
      .join('; ');
    lines.push(`  ${left.padEnd(32)} ${option.description}${extra.length > 0 ? ` (${extra})` : ''}`);
  }
  return `${lines.join('\n')}\n`;
}

/** The one-line pointer printed under a usage error instead of the whole usage. */
export function helpHint(path: readonly string[], what: 'commands' | 'options'): string {
  return `Run 'scm ${[...path, '--help'].join(' ')}' for ${what === 'commands' ? 'the commands' : 'its options'}.\n`;
}
