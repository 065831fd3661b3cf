// The snapshot figures: runs bench/snapshot.bench.ts (checkpoint, transfer and install of an
// N-record scm.db next to tar czf/xzf) in its own process and keeps its table and JSON line.
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { SnapshotPart } from '../lib/report.js';

/** The table lines and the `{"bench":"snapshot",…}` line of snapshot.bench.ts's output. */
export function parseSnapshotOutput(output: string): { result: Record<string, unknown> | undefined; lines: string[] } {
  let result: Record<string, unknown> | undefined;
  const lines: string[] = [];
  for (const line of output.split('\n')) {
    if (line.startsWith('{')) {
      try {
        const parsed = JSON.parse(line) as Record<string, unknown>;
        if (parsed['bench'] === 'snapshot') {
          result = parsed;
          continue;
        }
      } catch {
        // a line that only looks like JSON
      }
    }
    if (line.trim() === '' || line.startsWith('populating') || line.startsWith('  progress')) continue;
    lines.push(line);
  }
  return { result, lines };
}

export async function runSnapshotPart(records: number, log: (line: string) => void): Promise<SnapshotPart> {
  const script = fileURLToPath(new URL('../snapshot.bench.ts', import.meta.url));
  const child = spawn(process.execPath, ['--import', 'tsx', script, '--records', String(records)], { stdio: ['ignore', 'pipe', 'inherit'] });
  let output = '';
  const lines = createInterface({ input: child.stdout });
  lines.on('line', (line) => {
    output += `${line}\n`;
    if (line.trim() !== '' && !line.startsWith('{')) log(`  ${line}`);
  });
  const closed = new Promise((resolve) => lines.once('close', resolve));
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  // Its output is complete once the pipe closes, which a leftover grandchild could delay: wait a little, not forever.
  await Promise.race([closed, new Promise((resolve) => setTimeout(resolve, 2_000))]);
  const parsed = parseSnapshotOutput(output);
  if (code !== 0 || parsed.result === undefined) throw new Error(`bench/snapshot.bench.ts exited with ${code} without its result line`);
  return { records, result: parsed.result, lines: parsed.lines };
}
