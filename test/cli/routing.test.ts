// How `scm` finds the command its words name: --version, a group's commands when the words stop at
// a group, and "did you mean" with a short pointer for a mistyped word.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { runCli } from '../../src/cli/run.js';
import { editDistance, suggestions } from '../../src/cli/suggest.js';

async function scm(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await runCli(argv, { stdout: (t) => (out += t), stderr: (t) => (err += t), env: {} });
  return { code, out, err };
}

test('scm --version prints the package version', async () => {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  const r = await scm('--version');
  assert.equal(r.code, 0);
  assert.equal(r.out, `scm-ha ${pkg.version} (Node.js ${process.version})\n`);
});

test('scm admin alone lists the admin verbs and exits 0', async () => {
  const r = await scm('admin');
  assert.equal(r.code, 0);
  assert.equal(r.err, '');
  assert.match(r.out, /^Usage: scm admin COMMAND \[options\]\nCommands:\n/);
  for (const verb of ['scm roles', 'scm transfer', 'scm decommission', 'container list', 'pipeline create', 'datanode register', 'snapshot save']) {
    assert.match(r.out, new RegExp(`\\n  scm admin ${verb}\\s`), verb);
  }
  assert.doesNotMatch(r.out, /scm init|scm cluster/, 'only the admin verbs');
  const group = await scm('admin', 'container');
  assert.match(group.out, /^Usage: scm admin container COMMAND/);
  assert.doesNotMatch(group.out, /scm admin pipeline/);
  const top = await scm();
  assert.equal(top.code, 0);
  assert.match(top.out, /scm --version/);
  assert.match(top.out, /scm cluster/);
});

test('a mistyped word gets "did you mean" and a pointer to --help, not the usage', async () => {
  const cases: [string[], string][] = [
    [['admin', 'contianer', 'list'], 'scm: unknown command "scm admin contianer"; did you mean "scm admin container"?\nRun \'scm admin --help\' for the commands.\n'],
    [['admni'], 'scm: unknown command "scm admni"; did you mean "scm admin"?\nRun \'scm --help\' for the commands.\n'],
    [['admin', 'container', 'lsit'], 'scm: unknown command "scm admin container lsit"; did you mean "scm admin container list"?\nRun \'scm admin container --help\' for the commands.\n'],
    [['admin', 'frobnicate'], "scm: unknown command \"scm admin frobnicate\"\nRun 'scm admin --help' for the commands.\n"],
    [['--verison'], 'scm: unknown option --verison; did you mean "--version"?\nRun \'scm --help\' for the commands.\n'],
    [['admin', '--json'], 'scm: "scm admin" needs a command before --json\nRun \'scm admin --help\' for the commands.\n'],
  ];
  for (const [argv, expected] of cases) {
    const r = await scm(...argv);
    assert.equal(r.code, 2, argv.join(' '));
    assert.equal(r.err, expected);
    assert.equal(r.out, '');
  }
});

test('edit distance counts a transposition as one edit; suggestions rank the closest first', () => {
  assert.equal(editDistance('contianer', 'container'), 1);
  assert.equal(editDistance('', 'abc'), 3);
  assert.equal(editDistance('abc', 'abc'), 0);
  assert.deepEqual(suggestions('pipline', ['pipeline', 'container', 'datanode']), ['pipeline']);
  assert.deepEqual(suggestions('dec', ['decommission', 'roles']), ['decommission'], 'a prefix counts');
  assert.deepEqual(suggestions('xyz', ['roles', 'transfer']), []);
});
