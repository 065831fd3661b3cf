// A stand-in `scm` command for tests of the scripts that call it: an executable that records each
// call instead of running anything.
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * A directory with an executable `scm` that logs each call to $STUB_LOG: its arguments, the ENSURE_
 * variables and the node id setting, which must reach it through the script's shell.
 */
export function stubScm(dir: string): void {
  const bin = join(dir, 'bin');
  mkdirSync(bin, { recursive: true });
  writeFileSync(
    join(bin, 'scm'),
    [
      // bash: dash, Debian's sh, would itself drop the OZONE-SITE.XML_ variable it is to report.
      '#!/bin/bash',
      'printf \'%s|%s|%s|%s\\n\' "$*" "${ENSURE_SCM_INITIALIZED-}" "${ENSURE_SCM_BOOTSTRAPPED-}" "$(printenv OZONE-SITE.XML_ozone.scm.node.id)" >> "$STUB_LOG"',
      'case "$1" in admin) exit "${STUB_ADMIN_EXIT:-0}";; esac',
      'exit 0',
      '',
    ].join('\n'),
  );
  chmodSync(join(bin, 'scm'), 0o755);
}

export function calls(log: string): { args: string; initialized: string; bootstrapped: string; nodeId: string }[] {
  if (!existsSync(log)) return [];
  return readFileSync(log, 'utf8')
    .trim()
    .split('\n')
    .map((line) => {
      const [args = '', initialized = '', bootstrapped = '', nodeId = ''] = line.split('|');
      return { args, initialized, bootstrapped, nodeId };
    });
}

