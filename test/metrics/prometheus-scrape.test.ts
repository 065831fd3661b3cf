// A real Prometheus scrapes three HTTP endpoints served by NodeMetrics (one leader, two followers)
// and answers queries about them through its HTTP API: proves the exposition, the /prom path, the
// node id label and the dashboard's PromQL all work with the real server, not just with promtool.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NodeMetrics } from '../../src/metrics/node-metrics.js';
import { startMetricsHttpServer, type MetricsHttpServer } from '../../src/metrics/http-server.js';
import { ephemeralPort } from '../integration/port-block.js';

const PROMETHEUS = '/usr/bin/prometheus';
const DEADLINE_MS = 30_000;


interface QueryResult {
  status: string;
  error?: string;
  data?: { result: { metric: Record<string, string>; value: [number, string] }[] };
}

async function query(port: number, promql: string): Promise<QueryResult> {
  const res = await fetch(`http://127.0.0.1:${port}/api/v1/query?query=${encodeURIComponent(promql)}`);
  return (await res.json()) as QueryResult;
}

/** Polls until `check` returns a value (Prometheus scrapes once a second), or fails with the last state. */
async function eventually<T>(what: string, check: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + DEADLINE_MS;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (error) {
      last = error;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  assert.fail(`timed out waiting for ${what}${last === undefined ? '' : `: ${String(last)}`}`);
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  await exited;
}

test('a real Prometheus scrapes three nodes: one leader, rising applied index, dashboard queries valid, "no leader" shown', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'scm-prom-'));
  const servers: MetricsHttpServer[] = [];
  let prometheus: ChildProcess | undefined;
  let stderr = '';
  try {
    const nodes = ['scm1', 'scm2', 'scm3'].map((id) => new NodeMetrics({ nodeId: id, peers: ['scm1', 'scm2', 'scm3'].filter((p) => p !== id) }));
    nodes[0]?.setRole('leader');
    for (const node of nodes) {
      node.setTerm(2);
      node.setIndexes({ lastLog: 10, commit: 10, applied: 10 });
      servers.push(
        await startMetricsHttpServer({
          host: '127.0.0.1',
          port: 0,
          metrics: node,
          status: () => {
            throw new Error('not used');
          },
          readiness: () => ({ ready: true, reason: '' }),
        }),
      );
    }
    const targets = servers.map((s) => `'127.0.0.1:${s.port}'`).join(', ');
    const config = join(dir, 'prometheus.yml');
    await writeFile(
      config,
      `global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\nscrape_configs:\n  - job_name: scm\n    metrics_path: /prom\n    static_configs:\n      - targets: [${targets}]\n`,
    );
    const port = await ephemeralPort();
    prometheus = spawn(
      PROMETHEUS,
      [`--config.file=${config}`, `--storage.tsdb.path=${join(dir, 'tsdb')}`, `--web.listen-address=127.0.0.1:${port}`, '--log.level=warn'],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    prometheus.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
    const child = prometheus;
    const exitedEarly = new Promise<never>((_, reject) =>
      child.once('exit', (code) => reject(new Error(`prometheus exited with ${String(code)}: ${stderr}`))),
    );
    const run = async () => {
      // All three targets up.
      await eventually('three targets up', async () => {
        const r = await query(port, 'sum(up{job="scm"})');
        return r.data?.result[0]?.value[1] === '3' ? true : undefined;
      });
      // Exactly one leader, and it is scm1.
      const leaders = await eventually('the leader series', async () => {
        const r = await query(port, 'scm_raft_role{role="leader"} == 1');
        return r.data !== undefined && r.data.result.length > 0 ? r.data.result : undefined;
      });
      assert.deepEqual(leaders.map((s) => s.metric.scm_node_id), ['scm1']);

      // The applied index rises as the node applies entries.
      for (const applied of [25, 60]) {
        for (const node of nodes) node.setIndexes({ lastLog: applied, commit: applied, applied });
        await eventually(`applied index ${applied} on all three`, async () => {
          const r = await query(port, 'min(scm_raft_applied_index)');
          return r.data?.result[0]?.value[1] === String(applied) ? true : undefined;
        });
      }

      // Every PromQL expression of the Grafana dashboard parses and evaluates.
      const dashboard = JSON.parse(await readFile(new URL('../../deploy/grafana/dashboards/scm-ha.json', import.meta.url), 'utf8')) as {
        panels: { title: string; targets?: { expr: string }[] }[];
      };
      const exprs = dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => ({ title: p.title, expr: t.expr })));
      assert.ok(exprs.length > 10);
      for (const { title, expr } of exprs) {
        const r = await query(port, expr);
        assert.equal(r.status, 'success', `panel "${title}": ${expr}: ${r.error ?? ''}`);
      }
      // The dashboard's leader panel query names the leader.
      const leaderPanel = exprs.find((e) => e.title === 'Leader');
      assert.ok(leaderPanel);
      const r = await query(port, leaderPanel.expr);
      assert.deepEqual(r.data?.result.map((s) => [s.metric.scm_node_id, s.value[1]]), [['scm1', '1']]);
      // With no leader the panel's query still answers: one series named "no leader", valued 0,
      // which the panel's thresholds paint red (an empty answer would leave the panel blank).
      nodes[0]?.setRole('candidate');
      const none = await eventually('the leader panel to say "no leader"', async () => {
        const answer = await query(port, leaderPanel.expr);
        const names = answer.data?.result.map((s) => s.metric.scm_node_id);
        return names?.length === 1 && names[0] === 'no leader' ? answer.data?.result : undefined;
      });
      assert.equal(none[0]?.value[1], '0');
    };
    await Promise.race([run(), exitedEarly]);
  } finally {
    if (prometheus !== undefined) await stop(prometheus);
    for (const server of servers) await server.close();
    await rm(dir, { recursive: true, force: true });
  }
});
