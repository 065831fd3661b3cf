#!/usr/bin/env node
// Launcher for the `scm` command: runs the compiled CLI from dist/ when it has been built
// (`npm run build`), otherwise the TypeScript sources through tsx's ESM loader.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const built = new URL('../dist/src/cli/main.js', import.meta.url);
if (existsSync(fileURLToPath(built))) {
  await import(built.href);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import(new URL('../src/cli/main.ts', import.meta.url).href);
}
