// bin/scm.js picks what to run by one rule: the sources when they are there, dist/ only when they
// are not. Each case lays out a copy of the launcher beside stand-in entry points that say which
// one ran.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

interface Layout {
  readonly src?: boolean;
  readonly dist?: boolean;
  readonly nodeModules?: boolean;
}

function launch(layout: Layout): { code: number | null; stdout: string; stderr: string } {
  const root = mkdtempSync(join(tmpdir(), 'scm-launcher-'));
  try {
    mkdirSync(join(root, 'bin'));
    copyFileSync(join(ROOT, 'bin/scm.js'), join(root, 'bin/scm.js'));
    writeFileSync(join(root, 'package.json'), '{"type":"module"}\n');
    if (layout.src === true) {
      mkdirSync(join(root, 'src/cli'), { recursive: true });
      // A type annotation: only a TypeScript loader can run this.
      writeFileSync(join(root, 'src/cli/main.ts'), "const from: string = 'src';\nprocess.stdout.write(`ran ${from}\\n`);\n");
    }
    if (layout.dist === true) {
      mkdirSync(join(root, 'dist/src/cli'), { recursive: true });
      writeFileSync(join(root, 'dist/src/cli/main.js'), "process.stdout.write('ran dist\\n');\n");
    }
    if (layout.nodeModules === true) symlinkSync(join(ROOT, 'node_modules'), join(root, 'node_modules'), 'dir');
    const run = spawnSync(process.execPath, [join(root, 'bin/scm.js')], { encoding: 'utf8', timeout: 60_000 });
    return { code: run.status, stdout: run.stdout, stderr: run.stderr };
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

test('a checkout runs its sources even when an older dist/ is there', () => {
  const run = launch({ src: true, dist: true, nodeModules: true });
  assert.equal(run.stdout, 'ran src\n', run.stderr);
  assert.equal(run.code, 0);
});

test('without sources (the image) dist/ runs', () => {
  const run = launch({ dist: true });
  assert.equal(run.stdout, 'ran dist\n', run.stderr);
  assert.equal(run.code, 0);
});

test('sources without tsx installed fail saying to run npm ci, and never fall back to dist/', () => {
  const run = launch({ src: true, dist: true });
  assert.equal(run.code, 1);
  assert.equal(run.stdout, '');
  assert.match(run.stderr, /^scm: .*src\/cli\/main\.ts runs through tsx, which cannot be loaded .*run `npm ci`/);
});

test('neither sources nor dist/ is an error naming both', () => {
  const run = launch({});
  assert.equal(run.code, 1);
  assert.match(run.stderr, /found neither .*src\/cli\/main\.ts nor .*dist\/src\/cli\/main\.js/);
});
