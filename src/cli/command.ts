// What a `scm` subcommand is: its words, its options, and a handler returning the exit code.
// Handlers write through CliIo rather than process.stdout so the CLI runs in-process in tests.

export interface CliIo {
  readonly stdout: (text: string) => void;
  readonly stderr: (text: string) => void;
  readonly env: NodeJS.ProcessEnv;
}

export type OptionKind = 'string' | 'boolean' | 'integer';

export interface OptionSpec {
  /** Long name without dashes: `new-leader-id` for `--new-leader-id`. */
  readonly name: string;
  /** One letter for `-n`, where Ozone (or etcdctl) has one. */
  readonly short?: string;
  /** Other long names accepted for it, without dashes: Ozone's own spellings (`newLeaderId`). */
  readonly aliases?: readonly string[];
  readonly kind: OptionKind;
  readonly description: string;
  readonly valueName?: string;
  readonly default?: string | number | boolean;
  readonly required?: boolean;
  /** Accepted values, matched ignoring case and stored as spelled here. */
  readonly choices?: readonly string[];
}

export interface PositionalSpec {
  readonly name: string;
  readonly description: string;
}

export interface ParsedArgs {
  readonly options: ReadonlyMap<string, string | number | boolean>;
  /** Options given on the command line (not defaults), for "give only one of" checks. */
  readonly given: ReadonlySet<string>;
  readonly positionals: readonly string[];
}

export interface CommandContext {
  readonly command: CommandSpec;
  readonly args: ParsedArgs;
  readonly io: CliIo;
  string(name: string): string | undefined;
  requiredString(name: string): string;
  integer(name: string): number | undefined;
  flag(name: string): boolean;
  /** Whether the option was on the command line (a default does not count). */
  given(name: string): boolean;
  positional(index: number): string;
}

export interface CommandSpec {
  /** The words after `scm`, e.g. ['admin', 'container', 'create']. */
  readonly path: readonly string[];
  readonly summary: string;
  readonly options: readonly OptionSpec[];
  /** Required positional arguments, in order. */
  readonly positionals?: readonly PositionalSpec[];
  /** Resolves to the process exit code. */
  run(context: CommandContext): Promise<number>;
}

/** Bad usage: the message is printed with a pointer to the command's --help, and the exit code is 2. */
export class UsageError extends Error {
  constructor(
    message: string,
    readonly command?: CommandSpec,
  ) {
    super(message);
    this.name = 'UsageError';
  }
}

export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;
