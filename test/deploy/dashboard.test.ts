// The Grafana dashboard (deploy/grafana/dashboards/scm-ha.json) against the metrics a node really
// exposes: no rate()/increase() over a gauge (types from the NodeMetrics registry), one unit on
// every panel that fits what all its queries measure, every query on the data source variable, and
// a leader panel that turns red when no node leads. The checks themselves are tested on dashboards
// built to break them, and they find the faults of the dashboard this one replaced.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { NodeMetrics } from '../../src/metrics/node-metrics.js';
import { dashboardProblems, metricTypes, rangeFunctionProblems, seriesKind, seriesNames, type Dashboard, type DashboardPanel, type MetricType } from './dashboard-lint.js';
import { readYaml, ROOT } from './deploy-files.js';

function dashboard(): Dashboard {
  return JSON.parse(readFileSync(`${ROOT}deploy/grafana/dashboards/scm-ha.json`, 'utf8')) as Dashboard;
}

async function registryTypes(): Promise<Map<string, MetricType>> {
  return metricTypes(await new NodeMetrics({ nodeId: 'x', peers: ['y'] }).render());
}

test('the dashboard passes every check: counter functions on counters, one unit per panel, the data source variable', async () => {
  const types = await registryTypes();
  // The types come from the registry, not from a hand-written list.
  assert.equal(types.get('scm_raft_commit_index'), 'gauge');
  assert.equal(types.get('scm_raft_leader_changes_total'), 'counter');
  assert.equal(types.get('scm_raft_log_fsync_seconds'), 'histogram');
  assert.deepEqual(dashboardProblems(dashboard(), types), []);
});

test('the data source is a variable whose default is the provisioned Prometheus', () => {
  const d = dashboard();
  const variables = d.templating.list.filter((v) => v.type === 'datasource');
  assert.equal(variables.length, 1);
  const [variable] = variables;
  assert.equal(variable?.query, 'prometheus');
  const provisioned = readYaml('deploy/grafana/provisioning/datasources/prometheus.yml') as { datasources: { uid: string }[] };
  assert.equal(variable?.current?.value, provisioned.datasources[0]?.uid);
  // No panel or query names a data source other than through the variable.
  assert.ok(!JSON.stringify(d.panels).includes(provisioned.datasources[0]?.uid ?? '?'));
});

test('the leader panel is red and says "no leader" when no node leads', () => {
  const leader = dashboard().panels.find((p) => p.title === 'Leader');
  assert.ok(leader);
  const expr = leader.targets?.[0]?.expr ?? '';
  // When no node has role leader, the query yields one series named "no leader" with value 0 ...
  assert.match(expr, /or on\(\) label_replace\(vector\(0\), "scm_node_id", "no leader", "", ""\)$/);
  // ... which the thresholds paint red (a leader's 1 is green), on the background, by name.
  const defaults = leader.fieldConfig?.defaults;
  assert.equal(defaults?.color?.mode, 'thresholds');
  assert.deepEqual(defaults?.thresholds?.steps, [
    { color: 'red', value: null },
    { color: 'green', value: 1 },
  ]);
  assert.equal(leader.options?.colorMode, 'background');
  assert.equal(leader.options?.textMode, 'name');
  assert.equal(defaults?.mappings?.[0]?.options['0']?.text, 'no leader');
  assert.equal(defaults?.mappings?.[0]?.options['0']?.color, 'red');
});

test('the dashboard shows the health metrics too', () => {
  const exprs = dashboard().panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr)).join('\n');
  for (const metric of [
    'scm_raft_has_leader',
    'scm_raft_proposals_pending',
    'scm_raft_proposals_failed_total',
    'scm_raft_apply_seconds_bucket',
    'scm_raft_peer_last_contact_seconds',
    'scm_raft_peer_send_failures_total',
    'scm_raft_peer_round_trip_seconds_bucket',
    'scm_snapshot_checkpoint_creation_seconds_bucket',
    'scm_db_size_bytes',
    'scm_raft_log_size_bytes',
    'scm_build_info',
    'scm_pipelines',
    'scm_datanodes',
    'scm_consistency_mismatch',
  ]) {
    assert.ok(exprs.includes(metric), `no panel shows ${metric}`);
  }
});

test('the checks have teeth: rate() over a gauge, a missing or wrong unit, mixed units and a fixed data source are reported', async () => {
  const types = await registryTypes();
  assert.deepEqual(rangeFunctionProblems('rate(scm_raft_commit_index[1m])', types), [
    'rate() over the gauge scm_raft_commit_index (use deriv() or delta())',
  ]);
  assert.deepEqual(rangeFunctionProblems('sum by (x) (increase(scm_raft_term[5m]))', types), [
    'increase() over the gauge scm_raft_term (use deriv() or delta())',
  ]);
  assert.deepEqual(rangeFunctionProblems('deriv(scm_raft_elections_total[5m])', types), [
    'deriv() over the counter scm_raft_elections_total (use rate() or increase())',
  ]);
  assert.deepEqual(rangeFunctionProblems('rate(scm_no_such_metric_total[1m])', types), ['rate() over scm_no_such_metric_total, which no node exposes']);
  assert.match(rangeFunctionProblems('rate(max(scm_raft_term)[5m:1m])', types)[0] ?? '', /cannot be checked/);
  assert.deepEqual(rangeFunctionProblems('histogram_quantile(0.9, sum by (le) (rate(scm_raft_apply_seconds_bucket[1m])))', types), []);
  assert.deepEqual(rangeFunctionProblems('rate(scm_raft_log_entries_per_fsync_sum[1m]) / rate(scm_raft_log_entries_per_fsync_count[1m])', types), []);
  assert.deepEqual(rangeFunctionProblems('deriv(scm_raft_applied_index[1m])', types), []);
  assert.equal(seriesKind('process_cpu_seconds_total', types), 'counter');
  assert.deepEqual(
    seriesNames('sum by (le, scm_node_id) (rate(scm_raft_apply_seconds_bucket{job="scm"}[5m])) or on() label_replace(vector(0), "a", "b c", "", "") > 0.5'),
    ['scm_raft_apply_seconds_bucket'],
  );

  const ds = { type: 'prometheus', uid: '${datasource}' };
  const good: DashboardPanel = {
    id: 1,
    type: 'timeseries',
    title: 'ok',
    datasource: ds,
    targets: [{ expr: 'scm_raft_term', datasource: ds }],
    fieldConfig: { defaults: { unit: 'none' }, overrides: [] },
  };
  const base: Dashboard = { templating: { list: [{ name: 'datasource', type: 'datasource', query: 'prometheus' }] }, panels: [good] };
  assert.deepEqual(dashboardProblems(base, types), []);
  const bad = (panel: Partial<DashboardPanel>): string[] => dashboardProblems({ ...base, panels: [{ ...good, ...panel }] }, types);
  assert.deepEqual(bad({ fieldConfig: { defaults: {}, overrides: [] } }), ['panel "ok" has no unit']);
  assert.deepEqual(
    bad({ fieldConfig: { defaults: { unit: 'none' }, overrides: [{ matcher: { id: 'byName' }, properties: [{ id: 'unit', value: 's' }] }] } }),
    ['panel "ok" overrides the unit of some series (mixed units)'],
  );
  // The old "Entries per fsync (mean) and append latency p99": counts and seconds under one unit.
  assert.deepEqual(
    bad({
      targets: [
        { expr: 'rate(scm_raft_log_entries_per_fsync_sum[1m]) / rate(scm_raft_log_entries_per_fsync_count[1m])', datasource: ds },
        { expr: 'histogram_quantile(0.99, sum by (le, scm_node_id) (rate(scm_raft_log_append_seconds_bucket[1m])))', datasource: ds },
      ],
    }),
    ['panel "ok" mixes count and seconds in one panel'],
  );
  assert.deepEqual(bad({ targets: [{ expr: 'scm_db_size_bytes', datasource: ds }] }), ['panel "ok" shows bytes with unit none']);
  assert.deepEqual(bad({ targets: [{ expr: 'scm_raft_peer_last_contact_seconds', datasource: ds }], fieldConfig: { defaults: { unit: 'ms' }, overrides: [] } }), []);
  assert.deepEqual(bad({ datasource: { type: 'prometheus', uid: 'scm-prometheus' } }), ['panel "ok" uses data source scm-prometheus, not ${datasource}']);
  assert.deepEqual(bad({ targets: [{ expr: 'rate(scm_raft_applied_index[1m])', datasource: ds }] }), [
    'panel "ok": rate() over the gauge scm_raft_applied_index (use deriv() or delta())',
  ]);
  assert.deepEqual(dashboardProblems({ ...base, templating: { list: [] } }, types).slice(0, 1), ['no Prometheus data source variable']);
});
