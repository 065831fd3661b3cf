// The folder dependency direction of DESIGN.md is enforced by eslint.config.js (no-restricted-imports
// per folder). These tests lint probe files through ESLint's Node API with the project's own config
// and check that every forbidden arrow is reported and every allowed one is not, so a rule that stops
// biting (a wrong pattern, a folder without a rule) fails here. Only the parser's type information is
// switched off: the import rule does not need it, and a probe file is in no TypeScript project.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ESLint } from 'eslint';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/**
 * DESIGN.md's arrows: which folders of src/ each folder may import (besides leaf modules src/*.ts).
 * Deliberately written out here, not read from eslint.config.js: loosening the config must fail.
 */
const ARROWS: Readonly<Record<string, readonly string[]>> = {
  cli: ['api', 'client', 'server'],
  client: ['api'],
  server: ['api', 'raft', 'storage', 'statemachine', 'snapshot', 'metrics'],
  snapshot: ['statemachine'],
  raft: [],
  storage: [],
  statemachine: [],
  metrics: [],
  api: [],
};
const FOLDERS = Object.keys(ARROWS).sort();

const eslint = new ESLint({
  cwd: ROOT,
  overrideConfigFile: join(ROOT, 'eslint.config.js'),
  overrideConfig: { files: ['**/*.ts'], languageOptions: { parserOptions: { projectService: false } } },
  ruleFilter: ({ ruleId }) => ruleId === 'no-restricted-imports',
});

/** The no-restricted-imports messages for `code` as if it were the file `path` (relative to the root). */
async function restricted(path: string, code: string): Promise<string[]> {
  const [result] = await eslint.lintText(code, { filePath: join(ROOT, path) });
  assert.ok(result !== undefined);
  const fatal = result.messages.filter((m) => m.fatal === true);
  assert.deepEqual(fatal, [], `${path} did not parse`);
  return result.messages.filter((m) => m.ruleId === 'no-restricted-imports').map((m) => m.message);
}

test('every folder of src/ has its arrows in the table (a new folder gets a rule)', () => {
  const folders = readdirSync(join(ROOT, 'src'), { withFileTypes: true })
    .filter((entry) => entry.isDirectory())
    .map((entry) => entry.name)
    .sort();
  assert.deepEqual(folders, FOLDERS);
});

test('a raft file importing ../server/x.js is reported, with the rule naming what raft may import', async () => {
  const messages = await restricted('src/raft/probe.ts', "import { x } from '../server/x.js';\nexport const y = x;\n");
  assert.equal(messages.length, 1);
  assert.match(messages[0] ?? '', /src\/raft may import only the leaf modules src\/\*\.ts/);
});

test('each folder may import exactly the folders of its arrows, leaf modules and itself', async () => {
  const wrong: string[] = [];
  for (const from of FOLDERS) {
    for (const to of [...FOLDERS, 'nonexistent']) {
      if (to === from) continue;
      const expected = ARROWS[from]?.includes(to) === true;
      const messages = await restricted(`src/${from}/probe.ts`, `import { x } from '../${to}/x.js';\nexport const y = x;\n`);
      if ((messages.length === 0) !== expected) wrong.push(`${from} -> ${to}: ${expected ? 'allowed but reported' : 'forbidden but not reported'}`);
    }
    const own = await restricted(`src/${from}/probe.ts`, "import { a } from './a.js';\nimport { b } from '../crc32c.js';\nexport const y = [a, b];\n");
    if (own.length !== 0) wrong.push(`${from}: its own files or a leaf module reported: ${own.join('; ')}`);
  }
  assert.deepEqual(wrong, []);
});

test('type-only imports and re-exports are held to the same arrows', async () => {
  assert.equal((await restricted('src/storage/probe.ts', "import type { X } from '../raft/index.js';\nexport type Y = X;\n")).length, 1);
  assert.equal((await restricted('src/statemachine/probe.ts', "export * from '../snapshot/index.js';\n")).length, 1);
  assert.equal((await restricted('src/client/probe.ts', "export { ScmNode } from '../server/scm-node.js';\n")).length, 1);
});

test('leaf modules src/*.ts import nothing of ours', async () => {
  assert.equal((await restricted('src/probe.ts', "import { a } from './crc32c.js';\nexport const y = a;\n")).length, 1);
  assert.equal((await restricted('src/probe.ts', "import { a } from './raft/index.js';\nexport const y = a;\n")).length, 1);
  assert.deepEqual(await restricted('src/probe.ts', "import { join } from 'node:path';\nexport const y = join;\n"), []);
});

test('the server reaches its peers without the TypeScript client', async () => {
  assert.equal((await restricted('src/server/scm-node.ts', "import { ScmClient } from '../client/scm-client.js';\nexport const y = ScmClient;\n")).length, 1);
  assert.equal((await restricted('src/server/other.ts', "import { ScmClient } from '../client/scm-client.js';\nexport const y = ScmClient;\n")).length, 1);
});

test('src/ as it is keeps to the arrows', async () => {
  const results = await eslint.lintFiles(['src/**/*.ts']);
  const found = results.flatMap((r) => r.messages.map((m) => `${r.filePath}:${m.line}: ${m.message}`));
  assert.deepEqual(found, []);
});
