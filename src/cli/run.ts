// Runs one `scm …` invocation in-process: finds the command its words name, parses its arguments,
// runs it and turns failures into messages and exit codes (2 for bad usage, 1 for a failed
// operation). Words that stop at a group (`scm admin`) list that group's commands; a mistyped word
// gets "did you mean" and a pointer to --help rather than a page of usage.
import { ScmClientError } from '../client/scm-client.js';
import { packageVersion } from '../server/build-version.js';
import { helpHint, makeContext, parseArgs, usage, wantsHelp } from './args.js';
import { EXIT_FAILURE, EXIT_OK, EXIT_USAGE, UsageError, type CliIo, type CommandSpec } from './command.js';
import { COMMANDS } from './commands.js';
import { didYouMean } from './suggest.js';

const startsWith = (path: readonly string[], prefix: readonly string[]): boolean => prefix.every((word, i) => path[i] === word);

export type Resolution =
  | { readonly kind: 'command'; readonly command: CommandSpec; readonly rest: readonly string[] }
  /** The words name a group of commands (possibly all of them) and no command in it. */
  | { readonly kind: 'group'; readonly prefix: readonly string[]; readonly rest: readonly string[] }
  | { readonly kind: 'unknown'; readonly prefix: readonly string[]; readonly word: string };

/** Walks the words of argv down the command tree until a command, an option or an unknown word. */
export function resolveCommand(commands: readonly CommandSpec[], argv: readonly string[]): Resolution {
  const prefix: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const word = argv[i] ?? '';
    if (word.startsWith('-')) return { kind: 'group', prefix, rest: argv.slice(i) };
    const candidate = [...prefix, word];
    const command = commands.find((c) => c.path.length === candidate.length && startsWith(c.path, candidate));
    if (command !== undefined) return { kind: 'command', command, rest: argv.slice(i + 1) };
    if (!commands.some((c) => startsWith(c.path, candidate))) return { kind: 'unknown', prefix, word };
    prefix.push(word);
  }
  return { kind: 'group', prefix, rest: [] };
}

/** The words that may follow `prefix`: the next word of every command under it. */
function nextWords(commands: readonly CommandSpec[], prefix: readonly string[]): string[] {
  return commands.filter((c) => c.path.length > prefix.length && startsWith(c.path, prefix)).map((c) => c.path[prefix.length] ?? '');
}

/** The commands under a word prefix, e.g. everything under `scm admin container`. */
export function overview(commands: readonly CommandSpec[], prefix: readonly string[]): string {
  const under = commands.filter((command) => startsWith(command.path, prefix));
  const width = Math.max(...under.map((command) => command.path.join(' ').length));
  const lines = under.map((command) => `  scm ${command.path.join(' ').padEnd(width)}  ${command.summary}`);
  const head = `Usage: scm ${prefix.length > 0 ? `${prefix.join(' ')} ` : ''}COMMAND [options]${prefix.length === 0 ? '\n       scm --version' : ''}`;
  return `${head}\nCommands:\n${lines.join('\n')}\nRun a command with --help for its options.\n`;
}

export function versionText(): string {
  return `scm-ha ${packageVersion()} (Node.js ${process.version})\n`;
}

export async function runCli(argv: readonly string[], io: CliIo, commands: readonly CommandSpec[] = COMMANDS): Promise<number> {
  const resolution = resolveCommand(commands, argv);
  if (resolution.kind === 'unknown') {
    const { prefix, word } = resolution;
    const spell = (w: string): string => `"${['scm', ...prefix, w].join(' ')}"`;
    io.stderr(`scm: unknown command ${spell(word)}${didYouMean(word, nextWords(commands, prefix), spell)}\n${helpHint(prefix, 'commands')}`);
    return EXIT_USAGE;
  }
  if (resolution.kind === 'group') {
    const { prefix, rest } = resolution;
    if (prefix.length === 0 && rest.length === 1 && rest[0] === '--version') {
      io.stdout(versionText());
      return EXIT_OK;
    }
    if (rest.length === 0 || wantsHelp(rest)) {
      io.stdout(overview(commands, prefix));
      return EXIT_OK;
    }
    const what = prefix.length === 0 ? `unknown option ${rest[0] ?? ''}${didYouMean(rest[0] ?? '', ['--version', '--help'])}` : `"scm ${prefix.join(' ')}" needs a command before ${rest[0] ?? ''}`;
    io.stderr(`scm: ${what}\n${helpHint(prefix, 'commands')}`);
    return EXIT_USAGE;
  }
  const { command, rest } = resolution;
  if (wantsHelp(rest)) {
    io.stdout(usage(command));
    return EXIT_OK;
  }
  try {
    const args = parseArgs(command, rest);
    return await command.run(makeContext(command, args, io));
  } catch (err) {
    if (err instanceof UsageError) {
      io.stderr(`scm: ${err.message}\n${helpHint((err.command ?? command).path, 'options')}`);
      return EXIT_USAGE;
    }
    if (err instanceof ScmClientError) {
      io.stderr(`scm: ${err.codeName}: ${err.details}\n`);
      return EXIT_FAILURE;
    }
    io.stderr(`scm: ${err instanceof Error ? err.message : String(err)}\n`);
    return EXIT_FAILURE;
  }
}
