// ozone.scm.v8.heap.growing.percent: its default, the flag it becomes, that the daemon sets it
// before the node starts, and that a flag set while the process runs does reach V8's heap
// controller (node documents setting V8 flags after start-up as unspecified, so this is checked
// rather than assumed).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { loadConfig } from '../../src/server/config.js';
import { runNodeUntilSignalled } from '../../src/server/daemon.js';
import { applyHeapGrowingPercent, heapGrowingFlag } from '../../src/server/v8-heap.js';

const KEY = 'ozone.scm.v8.heap.growing.percent';
const base = { 'ozone.metadata.dirs': '/m' };

test('ozone.scm.v8.heap.growing.percent defaults to 100 and takes 0 to 300', () => {
  assert.equal(loadConfig({ overrides: base }).v8HeapGrowingPercent, 100);
  assert.equal(loadConfig({ overrides: { ...base, [KEY]: '0' } }).v8HeapGrowingPercent, 0);
  assert.equal(loadConfig({ overrides: { ...base, [KEY]: '300' } }).v8HeapGrowingPercent, 300);
  assert.throws(() => loadConfig({ overrides: { ...base, [KEY]: '301' } }), /ozone\.scm\.v8\.heap\.growing\.percent/);
  assert.throws(() => loadConfig({ overrides: { ...base, [KEY]: '-1' } }), /ozone\.scm\.v8\.heap\.growing\.percent/);
  assert.throws(() => loadConfig({ overrides: { ...base, [KEY]: '1.5' } }), /ozone\.scm\.v8\.heap\.growing\.percent/);
});

test("a percentage becomes V8's --heap-growing-percent; 0 sets nothing", () => {
  assert.equal(heapGrowingFlag(20), '--heap-growing-percent=20');
  assert.equal(heapGrowingFlag(0), undefined);
  assert.throws(() => heapGrowingFlag(-1), RangeError);
  const set: string[] = [];
  assert.equal(applyHeapGrowingPercent(35, (f) => set.push(f)), '--heap-growing-percent=35');
  assert.equal(applyHeapGrowingPercent(0, (f) => set.push(f)), undefined);
  assert.deepEqual(set, ['--heap-growing-percent=35']);
});

test('the daemon sets the configured factor before anything of the node starts', async () => {
  const set: string[] = [];
  let setBeforePrepare = false;
  const sink = new Writable({ write: (_chunk, _enc, callback) => callback() });
  const code = await runNodeUntilSignalled(
    { env: {} },
    {
      loadConfig: () => loadConfig({ overrides: { ...base, 'ozone.scm.node.id': 'scm1', [KEY]: '25' } }),
      setV8Flags: (flags) => set.push(flags),
      prepare: async () => {
        setBeforePrepare = set.length === 1;
        throw new Error('stop here on purpose');
      },
      destination: sink,
    },
  );
  assert.equal(code, 1);
  assert.equal(setBeforePrepare, true);
  assert.deepEqual(set, ['--heap-growing-percent=25']);
});

/**
 * Runs a child that sets the factor at run time through applyHeapGrowingPercent, then keeps ~30 MB
 * live while it turns 40 generations of 200,000 objects that each outlive a few scavenges into old
 * garbage: full collections counted and the old space's largest size.
 */
function garbageRun(percent: number): { majors: number; maxOldMiB: number } {
  const module = fileURLToPath(new URL('../../src/server/v8-heap.ts', import.meta.url));
  const script = `
    import { applyHeapGrowingPercent } from ${JSON.stringify(module)};
    import { getHeapSpaceStatistics } from 'node:v8';
    import { PerformanceObserver, constants } from 'node:perf_hooks';
    applyHeapGrowingPercent(${percent});
    let majors = 0;
    new PerformanceObserver((list) => { for (const e of list.getEntries()) if (e.detail.kind === constants.NODE_PERFORMANCE_GC_MAJOR) majors++; }).observe({ entryTypes: ['gc'] });
    const live = [];
    for (let i = 0; i < 300000; i++) live.push({ a: i, b: 'x' + i });
    const ring = new Array(200000);
    let maxOld = 0;
    for (let r = 0; r < 40; r++) {
      for (let i = 0; i < ring.length; i++) ring[i] = { r, i, s: 'y' + i };
      maxOld = Math.max(maxOld, getHeapSpaceStatistics().find((s) => s.space_name === 'old_space').space_size);
    }
    setTimeout(() => console.log(JSON.stringify({ majors, maxOldMiB: maxOld / 1048576, live: live.length, ring: ring.length })), 50);
  `;
  const out = execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { encoding: 'utf8' });
  return JSON.parse(out.trim().split('\n').at(-1) ?? '{}') as { majors: number; maxOldMiB: number };
}

test('a factor set while the process runs changes when V8 collects its old generation', () => {
  const own = garbageRun(0);
  const fixed = garbageRun(20);
  // V8's own factor (up to 4 on a server) lets the garbage pile up; 1.2 collects it far sooner.
  assert.ok(fixed.majors > own.majors, `full collections: ${fixed.majors} with 20 %, ${own.majors} with V8's own factor`);
  assert.ok(fixed.maxOldMiB < 0.75 * own.maxOldMiB, `old space peak: ${fixed.maxOldMiB.toFixed(1)} MiB with 20 %, ${own.maxOldMiB.toFixed(1)} with V8's own factor`);
});
