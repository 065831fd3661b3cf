// Summarises a V8 .cpuprofile (node --cpu-prof) over a time window: the top frames by self time and
// by inclusive time (a frame counted once per sample however often it recurs on the stack).
// Timestamps in a .cpuprofile are CLOCK_MONOTONIC microseconds, the clock of process.hrtime().
import { readFileSync } from 'node:fs';

interface CallFrame {
  readonly functionName: string;
  readonly url: string;
  readonly lineNumber: number;
}

interface ProfileNode {
  readonly id: number;
  readonly callFrame: CallFrame;
  readonly children?: readonly number[];
}

interface CpuProfile {
  readonly nodes: readonly ProfileNode[];
  readonly startTime: number;
  readonly endTime: number;
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
}

export interface FrameTime {
  readonly frame: string;
  readonly ms: number;
  readonly share: number;
}

export interface ProfileSummary {
  /** Sampled milliseconds inside the window (idle included). */
  readonly totalMs: number;
  /** Sampled milliseconds that were not (idle). */
  readonly busyMs: number;
  readonly self: readonly FrameTime[];
  readonly inclusive: readonly FrameTime[];
}

function frameName(f: CallFrame): string {
  const file = f.url.replace(/^file:\/\//, '').replace(/^.*\/(src|bench|test|node_modules)\//, '$1/');
  const name = f.functionName === '' ? '(anonymous)' : f.functionName;
  return file === '' ? name : `${name} ${file}:${f.lineNumber + 1}`;
}

/** The summary of `path` over [fromUs, toUs] (monotonic µs; undefined: the whole profile). */
export function summarizeProfile(path: string, fromUs?: number, toUs?: number, top = 25): ProfileSummary {
  const profile = JSON.parse(readFileSync(path, 'utf8')) as CpuProfile;
  const byId = new Map<number, ProfileNode>();
  const parent = new Map<number, number>();
  for (const n of profile.nodes) {
    byId.set(n.id, n);
    for (const c of n.children ?? []) parent.set(c, n.id);
  }
  const self = new Map<string, number>();
  const inclusive = new Map<string, number>();
  let total = 0;
  let idle = 0;
  let t = profile.startTime;
  for (let i = 0; i < profile.samples.length; i++) {
    t += profile.timeDeltas[i] ?? 0;
    // A sample's duration is the gap to the next one.
    const dt = (profile.timeDeltas[i + 1] ?? 0) / 1000;
    if (fromUs !== undefined && t < fromUs) continue;
    if (toUs !== undefined && t > toUs) break;
    const id = profile.samples[i] as number;
    const leaf = byId.get(id);
    if (leaf === undefined) continue;
    total += dt;
    const leafName = frameName(leaf.callFrame);
    if (leaf.callFrame.functionName === '(idle)') {
      idle += dt;
      continue;
    }
    self.set(leafName, (self.get(leafName) ?? 0) + dt);
    const seen = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const name = frameName((byId.get(cur) as ProfileNode).callFrame);
      if (seen.has(name)) continue;
      seen.add(name);
      inclusive.set(name, (inclusive.get(name) ?? 0) + dt);
    }
  }
  const busy = total - idle;
  const rank = (m: Map<string, number>): FrameTime[] =>
    [...m.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([frame, ms]) => ({ frame, ms, share: busy > 0 ? ms / busy : 0 }));
  return { totalMs: total, busyMs: busy, self: rank(self), inclusive: rank(inclusive) };
}

export function formatSummary(title: string, s: ProfileSummary, ops?: number): string {
  const lines = [`### ${title}`, '', `sampled ${s.totalMs.toFixed(0)} ms, busy ${s.busyMs.toFixed(0)} ms${ops !== undefined && ops > 0 ? ` (${((s.busyMs * 1000) / ops).toFixed(0)} µs CPU per op)` : ''}`, ''];
  lines.push('| self ms | self % | frame |', '| ---: | ---: | --- |');
  for (const f of s.self) lines.push(`| ${f.ms.toFixed(0)} | ${(f.share * 100).toFixed(1)} | \`${f.frame}\` |`);
  lines.push('', '| incl ms | incl % | frame |', '| ---: | ---: | --- |');
  for (const f of s.inclusive) lines.push(`| ${f.ms.toFixed(0)} | ${(f.share * 100).toFixed(1)} | \`${f.frame}\` |`);
  return lines.join('\n');
}
