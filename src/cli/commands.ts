// The `scm` command table: every subcommand is registered here, in one place. The node's own
// commands (init, bootstrap, start, cluster, restore, certs) and the admin verbs come from the modules
// that implement them; run.ts needs nothing else to dispatch, print help and report usage errors.
import { ADMIN_COMMANDS } from './admin-commands.js';
import type { CommandSpec } from './command.js';
import { NODE_COMMANDS } from './node-commands.js';
import { restoreCommand } from './restore-command.js';
import { repairRaftMetaCommand } from './repair-command.js';
import { certsCommand } from './certs-command.js';

export const COMMANDS: readonly CommandSpec[] = [...NODE_COMMANDS, restoreCommand, repairRaftMetaCommand, certsCommand, ...ADMIN_COMMANDS];
