// The alert rules Prometheus loads in the compose deployment (deploy/prometheus/alerts.yml): promtool
// accepts them, their unit tests (alerts.test.yml: input series and the alerts expected from them)
// pass, those tests would catch a broken rule, every rule is tested, and every metric the rules and
// their tests use is one a node exposes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NodeMetrics } from '../../src/metrics/node-metrics.js';
import { readYaml, ROOT } from './deploy-files.js';

const PROMTOOL = '/usr/bin/promtool';
const RULES = `${ROOT}deploy/prometheus/alerts.yml`;
const RULE_TESTS = `${ROOT}deploy/prometheus/alerts.test.yml`;

interface Rule {
  alert: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
interface RuleTests {
  rule_files: string[];
  tests: {
    name: string;
    input_series: { series: string; values: string }[];
    alert_rule_test?: { alertname: string; eval_time: string; exp_alerts: unknown[] | null }[];
  }[];
}

function promtool(...args: string[]): { status: number | null; output: string } {
  const result = spawnSync(PROMTOOL, args, { encoding: 'utf8' });
  if (result.error) throw result.error;
  return { status: result.status, output: `${result.stdout}${result.stderr}` };
}

function rules(): Rule[] {
  const file = readYaml('deploy/prometheus/alerts.yml') as { groups: { name: string; rules: Rule[] }[] };
  return file.groups.flatMap((g) => g.rules);
}

function ruleTests(): RuleTests {
  return readYaml('deploy/prometheus/alerts.test.yml') as RuleTests;
}

test('promtool check rules accepts alerts.yml', () => {
  const { status, output } = promtool('check', 'rules', RULES);
  assert.equal(status, 0, output);
  assert.match(output, new RegExp(`SUCCESS: ${rules().length} rules found`));
});

test('promtool test rules: every rule fires on its input series, and only when it should', () => {
  const { status, output } = promtool('test', 'rules', RULE_TESTS);
  assert.equal(status, 0, output);
  assert.match(output, /SUCCESS/);
});

test('the rule tests have teeth: a broken threshold or a dropped `for` fails them', () => {
  const original = readFileSync(RULES, 'utf8');
  const mutations: [string, string][] = [
    ['expr: scm_raft_has_leader == 0', 'expr: scm_raft_has_leader == 2'],
    [' unless scm_raft_removed == 1', ''],
    ['expr: scm_raft_removed == 1', 'expr: scm_raft_removed == 2'],
    ['expr: increase(scm_raft_leader_changes_total[15m]) >= 4', 'expr: increase(scm_raft_leader_changes_total[15m]) >= 3'],
    ['> 0.5\n        for: 10m', '> 0.5\n        for: 1m'],
    ['unless\n          increase(scm_snapshot_installs_total[30m]) > 0', 'unless\n          increase(scm_snapshot_installs_total[30m]) > 5'],
    ['expr: scm_consistency_mismatch > 0', 'expr: scm_consistency_mismatch > 1'],
  ];
  const dir = mkdtempSync(join(tmpdir(), 'scm-alerts-'));
  try {
    copyFileSync(RULE_TESTS, join(dir, 'alerts.test.yml'));
    for (const [from, to] of mutations) {
      assert.ok(original.includes(from), `alerts.yml no longer contains ${JSON.stringify(from)}: update this test`);
      writeFileSync(join(dir, 'alerts.yml'), original.replace(from, to));
      const { status, output } = promtool('test', 'rules', join(dir, 'alerts.test.yml'));
      assert.notEqual(status, 0, `the rule tests still pass with ${JSON.stringify(to)}:\n${output}`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the alerts the operators asked for exist, each with a severity, a summary and a description', () => {
  const names = rules().map((r) => r.alert);
  for (const wanted of [
    'ScmNoLeader',
    'ScmFrequentLeaderChanges',
    'ScmProposalsFailing',
    'ScmPeerUnreachable',
    'ScmSlowFsync',
    'ScmSnapshotInstallFailing',
    'ScmConsistencyMismatch',
    'ScmRaftLogEntriesDropped',
    'ScmRemovedNodeRunning',
  ]) {
    assert.ok(names.includes(wanted), `no alert ${wanted}`);
  }
  assert.equal(new Set(names).size, names.length, 'duplicate alert names');
  for (const rule of rules()) {
    assert.ok(['critical', 'warning'].includes(rule.labels?.severity ?? ''), `${rule.alert}: severity`);
    assert.ok((rule.annotations?.summary ?? '').length > 0, `${rule.alert}: summary`);
    assert.ok((rule.annotations?.description ?? '').length > 0, `${rule.alert}: description`);
  }
});

test('every rule has a unit test in which it fires, and the tests load alerts.yml', () => {
  const tests = ruleTests();
  assert.deepEqual(tests.rule_files, ['alerts.yml']);
  const firing = new Set(
    tests.tests.flatMap((t) => (t.alert_rule_test ?? []).filter((a) => (a.exp_alerts ?? []).length > 0).map((a) => a.alertname)),
  );
  const quiet = new Set(
    tests.tests.flatMap((t) => (t.alert_rule_test ?? []).filter((a) => (a.exp_alerts ?? []).length === 0).map((a) => a.alertname)),
  );
  for (const rule of rules()) {
    assert.ok(firing.has(rule.alert), `no test in which ${rule.alert} fires`);
    assert.ok(quiet.has(rule.alert), `no test in which ${rule.alert} stays quiet`);
  }
});

test('the rules and their input series use only metrics a node exposes', async () => {
  const exposition = await new NodeMetrics({ nodeId: 'x', peers: ['y'] }).render();
  const families = new Set([...exposition.matchAll(/^# TYPE (\S+) (\S+)/gm)].map((m) => m[1]));
  const known = (name: string): boolean => name === 'up' || families.has(name) || families.has(name.replace(/_(bucket|sum|count)$/, ''));
  const metricNames = (expr: string): string[] =>
    [...expr.matchAll(/\b(scm_[a-z0-9_]+|up)\b(?=\s*[{[)\s=<>!]|$)/g)].map((m) => m[1] ?? '').filter((n) => n !== 'scm_node_id');
  for (const rule of rules()) {
    const names = metricNames(rule.expr);
    assert.ok(names.length > 0, `${rule.alert}: no metric found in ${rule.expr}`);
    for (const name of names) assert.ok(known(name), `${rule.alert} uses ${name}, which no node exposes`);
  }
  for (const t of ruleTests().tests) {
    for (const input of t.input_series) {
      const name = /^([a-zA-Z_:][a-zA-Z0-9_:]*)/.exec(input.series)?.[1] ?? '';
      assert.ok(known(name), `test "${t.name}" feeds ${name}, which no node exposes`);
      // The labels a real series has: job, instance, cluster from prometheus.yml and the node's id.
      if (name !== 'up') assert.match(input.series, /scm_node_id="scm\d"/, `test "${t.name}": ${input.series} lacks scm_node_id`);
      assert.match(input.series, /job="scm",instance="scm\d:9876",cluster="scmservice"/, `test "${t.name}": ${input.series}`);
    }
  }
});
