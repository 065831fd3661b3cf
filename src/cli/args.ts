// Finds the command an argument vector names and parses its options: `--name value`, `--name=value`,
// boolean `--flag`, `--` ending options. Everything wrong is a UsageError naming the culprit.
import { UsageError, type CommandContext, type CommandSpec, type CliIo, type OptionSpec, type ParsedArgs } from './command.js';

export interface Resolved {
  readonly command: CommandSpec;
  readonly rest: readonly string[];
}

/** The command whose path is the longest prefix of argv; null when none matches. */
export function resolveCommand(commands: readonly CommandSpec[], argv: readonly string[]): Resolved | null {
  let best: CommandSpec | null = null;
  for (const command of commands) {
    const matches = command.path.every((word, i) => argv[i] === word);
    if (matches && (best === null || command.path.length > best.path.length)) best = command;
  }
  return best === null ? null : { command: best, rest: argv.slice(best.path.length) };
}

function parseValue(command: CommandSpec, spec: OptionSpec, raw: string): string | number {
  if (spec.kind === 'integer') {
    if (!/^\d+$/.test(raw) || !Number.isSafeInteger(Number(raw))) {
      throw new UsageError(`--${spec.name} expects a non-negative whole number, got ${JSON.stringify(raw)}`, command);
    }
    return Number(raw);
  }
  if (spec.choices !== undefined) {
    const upper = raw.toUpperCase();
    if (!spec.choices.includes(upper)) {
      throw new UsageError(`--${spec.name} must be one of ${spec.choices.join(', ')}, got ${JSON.stringify(raw)}`, command);
    }
    return upper;
  }
  if (raw.length === 0) throw new UsageError(`--${spec.name} needs a non-empty value`, command);
  return raw;
}

export function parseArgs(command: CommandSpec, args: readonly string[]): ParsedArgs {
  const options = new Map<string, string | number | boolean>();
  const positionals: string[] = [];
  let optionsEnded = false;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] ?? '';
    if (optionsEnded || !arg.startsWith('--') || arg === '--') {
      if (arg === '--' && !optionsEnded) optionsEnded = true;
      else positionals.push(arg);
      continue;
    }
    const eq = arg.indexOf('=');
    const name = eq < 0 ? arg.slice(2) : arg.slice(2, eq);
    const spec = command.options.find((option) => option.name === name);
    if (spec === undefined) throw new UsageError(`unknown option --${name}`, command);
    if (options.has(name)) throw new UsageError(`--${name} given more than once`, command);
    if (spec.kind === 'boolean') {
      if (eq >= 0) throw new UsageError(`--${name} is a flag and takes no value`, command);
      options.set(name, true);
      continue;
    }
    let raw: string | undefined;
    if (eq >= 0) raw = arg.slice(eq + 1);
    else {
      raw = args[i + 1];
      if (raw === undefined || raw.startsWith('--')) throw new UsageError(`--${name} needs a value (${spec.valueName ?? spec.kind})`, command);
      i++;
    }
    options.set(name, parseValue(command, spec, raw));
  }
  for (const spec of command.options) {
    if (options.has(spec.name)) continue;
    if (spec.required === true) throw new UsageError(`--${spec.name} is required`, command);
    if (spec.default !== undefined) options.set(spec.name, spec.default);
  }
  const expected = command.positionals ?? [];
  if (positionals.length < expected.length) {
    throw new UsageError(`missing argument ${expected.slice(positionals.length).map((p) => p.name.toUpperCase()).join(' ')}`, command);
  }
  if (positionals.length > expected.length) {
    throw new UsageError(`unexpected argument ${JSON.stringify(positionals[expected.length])}`, command);
  }
  return { options, positionals };
}

export function makeContext(command: CommandSpec, args: ParsedArgs, io: CliIo): CommandContext {
  const value = (name: string): string | number | boolean | undefined => {
    if (!command.options.some((option) => option.name === name)) throw new Error(`internal: command ${command.path.join(' ')} has no option --${name}`);
    return args.options.get(name);
  };
  return {
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
  for (const p of command.positionals ?? []) lines.push(`  ${p.name.toUpperCase().padEnd(28)} ${p.description}`);
  for (const option of command.options) {
    const left = option.kind === 'boolean' ? `--${option.name}` : `--${option.name} ${option.valueName ?? option.kind.toUpperCase()}`;
    const extra = [
      option.choices !== undefined ? `one of ${option.choices.join(', ')}` : '',
      option.default !== undefined ? `default ${String(option.default)}` : '',
      option.required === true ? 'required' : '',
    ]
      .filter((s) => s.length > 0)
      .join('; ');
    lines.push(`  ${left.padEnd(28)} ${option.description}${extra.length > 0 ? ` (${extra})` : ''}`);
  }
  return `${lines.join('\n')}\n`;
}
