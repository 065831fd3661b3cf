#!/usr/bin/env node
// Launcher for the `scm` command. One rule, so that a stale build can never run in place of edited
// sources: where the TypeScript sources are (a checkout), they run, through tsx's ESM loader; the
// compiled dist/ runs only where there are no sources (the Docker image ships bin/ and dist/
// without src/). `npm run build` is for type checking and for the image, never for `scm` here.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const source = new URL('../src/cli/main.ts', import.meta.url);
const built = new URL('../dist/src/cli/main.js', import.meta.url);

if (existsSync(fileURLToPath(source))) {
  let tsx;
  try {
    tsx = await import('tsx/esm/api');
  } catch (err) {
    process.stderr.write(
      `scm: ${fileURLToPath(source)} runs through tsx, which cannot be loaded (${err instanceof Error ? err.message : String(err)}): run \`npm ci\` in ${fileURLToPath(new URL('..', import.meta.url))}\n`,
    );
    process.exit(1);
  }
  tsx.register();
  await import(source.href);
} else if (existsSync(fileURLToPath(built))) {
  await import(built.href);
} else {
  process.stderr.write(`scm: found neither ${fileURLToPath(source)} nor ${fileURLToPath(built)}: run \`npm run build\` for dist/\n`);
  process.exit(1);
}
