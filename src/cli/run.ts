// Runs one `scm …` invocation in-process: resolves the command, parses its arguments, runs it and
// turns failures into messages and exit codes (2 for bad usage, 1 for a failed operation).
import { ScmClientError } from '../client/scm-client.js';
import { makeContext, parseArgs, resolveCommand, usage } from './args.js';
import { EXIT_FAILURE, EXIT_OK, EXIT_USAGE, UsageError, type CliIo, type CommandSpec } from './command.js';
import { COMMANDS } from './commands.js';

/** The commands under a word prefix, e.g. everything under `scm admin container`. */
function overview(commands: readonly CommandSpec[], prefix: readonly string[]): string {
  const under = commands.filter((command) => prefix.every((word, i) => command.path[i] === word));
  const width = Math.max(...under.map((command) => command.path.join(' ').length));
  const lines = under.map((command) => `  scm ${command.path.join(' ').padEnd(width)}  ${command.summary}`);
  return `Usage: scm ${prefix.length > 0 ? `${prefix.join(' ')} ` : ''}COMMAND [options]\nCommands:\n${lines.join('\n')}\nRun a command with --help for its options.\n`;
}

export async function runCli(argv: readonly string[], io: CliIo, commands: readonly CommandSpec[] = COMMANDS): Promise<number> {
  const wantsHelp = argv.includes('--help') || argv.includes('-h');
  const resolved = resolveCommand(commands, argv);
  if (resolved === null) {
    const words = argv.filter((arg) => !arg.startsWith('-'));
    // The longest prefix of the words that some command starts with, to list its subcommands.
    let prefix: string[] = [];
    for (let n = words.length; n > 0; n--) {
      const candidate = words.slice(0, n);
      if (commands.some((command) => candidate.every((word, i) => command.path[i] === word))) {
        prefix = candidate;
        break;
      }
    }
    if (wantsHelp && prefix.length === words.length) {
      io.stdout(overview(commands, prefix));
      return EXIT_OK;
    }
    const unknown = words.length === 0 ? 'no command given' : `unknown command: scm ${words.join(' ')}`;
    io.stderr(`scm: ${unknown}\n${overview(commands, prefix)}`);
    return EXIT_USAGE;
  }
  const { command, rest } = resolved;
  if (wantsHelp) {
    io.stdout(usage(command));
    return EXIT_OK;
  }
  try {
    const args = parseArgs(command, rest);
    return await command.run(makeContext(command, args, io));
  } catch (err) {
    if (err instanceof UsageError) {
      io.stderr(`scm: ${err.message}\n${usage(err.command ?? command)}`);
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
