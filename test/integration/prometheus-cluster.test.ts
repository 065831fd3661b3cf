// A real Prometheus against a real local 3-node cluster: exactly one leader, the applied index
// rising while clients allocate, and promtool accepting what a running node serves.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promtoolCheck } from '../metrics/fixtures.js';
import { TestCluster } from './harness.js';
import { openPipeline } from './workload.js';
import { ephemeralPort } from './port-block.js';

interface QueryResult {
  status: string;
  data?: { result: { metric: Record<string, string>; value: [number, string] }[] };
}


async function query(port: number, promql: string): Promise<QueryResult['data']> {
  const res = await fetch(`http://127.0.0.1:${port}/api/v1/query?query=${encodeURIComponent(promql)}`);
  const body = (await res.json()) as QueryResult;
  assert.equal(body.status, 'success', promql);
  return body.data;
}

test('Prometheus sees one leader and a rising applied index on a live 3-node cluster; promtool accepts a node', { timeout: 240_000 }, async () => {
  const cluster = await TestCluster.create(3);
  let prometheus: ChildProcess | undefined;
  try {
    await cluster.bootstrapAll();
    const client = cluster.client(cluster.allClientAddresses(), 30_000);
    await openPipeline(client, 'THREE', 'picked');

    // promtool on a running node's own output.
    const exposition = await (await fetch(`http://127.0.0.1:${cluster.node(1).ports.http}/prom`)).text();
    const check = promtoolCheck(exposition);
    assert.equal(check.status, 0, check.output);
    assert.equal(check.output.trim(), '', `promtool complained:\n${check.output}`);

    const targets = cluster.nodes.map((n) => `'127.0.0.1:${n.ports.http}'`).join(', ');
    const config = join(cluster.dir, 'prometheus.yml');
    await writeFile(config, `global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\nscrape_configs:\n  - job_name: scm\n    metrics_path: /prom\n    static_configs:\n      - targets: [${targets}]\n`);
    const port = await ephemeralPort();
    prometheus = spawn('/usr/bin/prometheus', [`--config.file=${config}`, `--storage.tsdb.path=${join(cluster.dir, 'tsdb')}`, `--web.listen-address=127.0.0.1:${port}`, '--log.level=warn'], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });

    await cluster.waitFor('Prometheus to scrape all three nodes', 60_000, async () => (await query(port, 'sum(up{job="scm"})'))?.result[0]?.value[1] === '3');
    const leaderId = (await client.getClusterInfo()).leaderId;
    await cluster.waitFor('Prometheus to see exactly one leader', 30_000, async () => {
      const leaders = (await query(port, 'scm_raft_role{role="leader"} == 1'))?.result ?? [];
      return leaders.length === 1 && leaders[0]?.metric['scm_node_id'] === leaderId;
    });

    const appliedNow = async (): Promise<number> => Number((await query(port, 'min(scm_raft_applied_index)'))?.result[0]?.value[1] ?? '0');
    const before = await appliedNow();
    let allocating = true;
    const load = (async () => {
      while (allocating) await client.allocateContainer({ replicationType: 'RATIS', replicationFactor: 'THREE', owner: 'prom' });
    })();
    const seen: number[] = [before];
    try {
      await cluster.waitFor('the applied index to rise on every node, as Prometheus sees it', 60_000, async () => {
        seen.push(await appliedNow());
        return seen.filter((v, i) => i > 0 && v > seen[i - 1]!).length >= 2 && seen[seen.length - 1]! >= before + 100;
      });
    } finally {
      allocating = false;
      await load;
    }
    for (const histogram of ['scm_raft_log_fsync_seconds_count', 'scm_raft_log_append_seconds_count', 'scm_raft_log_entries_per_fsync_count']) {
      const value = (await query(port, `min(${histogram})`))?.result[0]?.value[1];
      assert.ok(Number(value ?? '0') > 0, `${histogram} is observed on every node (min ${value})`);
    }
    await cluster.waitFor('Prometheus to count the allocations on the leader', 30_000, async () => {
      const value = (await query(port, `scm_container_allocations_total{scm_node_id="${leaderId}"}`))?.result[0]?.value[1];
      return Number(value ?? '0') >= 100;
    });
  } catch (err) {
    (err as Error).message += `\n${cluster.tails(20)}`;
    throw err;
  } finally {
    if (prometheus !== undefined && prometheus.exitCode === null) {
      const exited = new Promise((resolve) => prometheus!.once('exit', resolve));
      prometheus.kill('SIGTERM');
      await exited;
    }
    await cluster.destroy();
  }
});
