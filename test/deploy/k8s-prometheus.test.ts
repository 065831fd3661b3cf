// The Prometheus job for the secure Kubernetes variant (deploy/prometheus/prometheus-kubernetes-tls.yml),
// offline: promtool accepts it (with a static target in place of the Kubernetes discovery, which
// the packaged promtool is built without), and its relabelling, applied here as Prometheus applies
// it to what pod discovery yields for the pods of deploy/kubernetes/secure/, gives one HTTPS
// target per SCM at the pod's DNS name (the name its certificate carries), on the HTTPS port, at
// /prom, with the labels the alert rules use.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { IStatefulSet } from 'kubernetes-models/apps/v1/StatefulSet';
import { loadConfig, requireSelf } from '../../src/server/config.js';
import { find, K8S_DIR, K8S_SECURE_DIR, loadManifests, podEnvironment, scmContainer, type Manifest } from './k8s-manifests.js';
import { readYaml, ROOT } from './deploy-files.js';

const CONFIG_FILE = 'deploy/prometheus/prometheus-kubernetes-tls.yml';
const NAMESPACE = 'scm-test';

interface RelabelConfig {
  source_labels?: string[];
  separator?: string;
  regex?: string;
  replacement?: string;
  target_label?: string;
  action?: string;
}
interface ScrapeConfig {
  job_name: string;
  scheme?: string;
  metrics_path?: string;
  tls_config?: { ca_file?: string; insecure_skip_verify?: boolean; server_name?: string };
  kubernetes_sd_configs?: { role: string }[];
  static_configs?: { targets: string[] }[];
  relabel_configs?: RelabelConfig[];
}
interface PrometheusConfig {
  rule_files?: string[];
  scrape_configs: ScrapeConfig[];
}

const config = readYaml(CONFIG_FILE) as PrometheusConfig;
const job = config.scrape_configs.find((j) => j.job_name === 'scm');

type Labels = Record<string, string>;

/** Prometheus' relabelling (the replace, keep and drop actions): a target's labels, or undefined when dropped. */
function relabel(labels: Labels, rules: readonly RelabelConfig[]): Labels | undefined {
  let current: Labels = { ...labels };
  for (const rule of rules) {
    const value = (rule.source_labels ?? []).map((l) => current[l] ?? '').join(rule.separator ?? ';');
    const regex = new RegExp(`^(?:${rule.regex ?? '(.*)'})$`);
    const match = regex.exec(value);
    const action = rule.action ?? 'replace';
    if (action === 'keep') {
      if (match === null) return undefined;
    } else if (action === 'drop') {
      if (match !== null) return undefined;
    } else if (action === 'replace') {
      if (match === null || rule.target_label === undefined) continue;
      // Go's Regexp.Expand: $1 or ${1}.
      const replaced = (rule.replacement ?? '$1').replace(/\$\{?(\d+)\}?/g, (_all, group: string) => match[Number(group)] ?? '');
      current = { ...current, [rule.target_label]: replaced };
    } else throw new Error(`relabel action ${action} is not simulated here`);
  }
  return current;
}

const sanitize = (name: string): string => name.replace(/[^a-zA-Z0-9_]/g, '_');

/** What Prometheus' Kubernetes pod discovery yields for the StatefulSet's pods: one target per container port. */
function discoveredTargets(manifests: readonly Manifest[]): Labels[] {
  const set = find<IStatefulSet>(manifests, 'StatefulSet');
  const template = set.spec?.template;
  const container = scmContainer(set);
  const targets: Labels[] = [];
  for (let ordinal = 0; ordinal < (set.spec?.replicas ?? 1); ordinal++) {
    const pod: Labels = { __meta_kubernetes_namespace: NAMESPACE, __meta_kubernetes_pod_name: `${set.metadata?.name ?? '?'}-${ordinal}` };
    for (const [k, v] of Object.entries(template?.metadata?.labels ?? {})) pod[`__meta_kubernetes_pod_label_${sanitize(k)}`] = v;
    for (const [k, v] of Object.entries(template?.metadata?.annotations ?? {})) pod[`__meta_kubernetes_pod_annotation_${sanitize(k)}`] = v;
    for (const port of container.ports ?? []) {
      targets.push({
        ...pod,
        __address__: `10.1.0.${ordinal + 1}:${port.containerPort}`,
        __meta_kubernetes_pod_container_name: container.name,
        __meta_kubernetes_pod_container_port_name: port.name ?? '',
        __meta_kubernetes_pod_container_port_number: String(port.containerPort),
      });
    }
  }
  return targets;
}

test(`${CONFIG_FILE}: promtool accepts it (Kubernetes discovery swapped for a static target) with the alert rules`, () => {
  assert.ok(job, 'no job scm');
  assert.deepEqual(job.kubernetes_sd_configs, [{ role: 'pod' }]);
  assert.deepEqual(config.rule_files, ['alerts.yml']);
  const dir = mkdtempSync(join(tmpdir(), 'scm-prom-k8s-'));
  try {
    const checked: PrometheusConfig = structuredClone(config);
    for (const j of checked.scrape_configs) {
      delete j.kubernetes_sd_configs;
      j.static_configs = [{ targets: ['scm-0.scm.scm-test.svc:9877'] }];
    }
    writeFileSync(join(dir, 'prometheus.yml'), JSON.stringify(checked));
    copyFileSync(join(ROOT, 'deploy/prometheus/alerts.yml'), join(dir, 'alerts.yml'));
    const result = spawnSync('/usr/bin/promtool', ['check', 'config', join(dir, 'prometheus.yml')], { encoding: 'utf8' });
    assert.equal(result.status, 0, `${result.stdout}${result.stderr}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test(`${CONFIG_FILE}: one HTTPS target per SCM pod, at its DNS name and HTTPS port, verified with the CA`, () => {
  assert.ok(job);
  assert.equal(job.scheme, 'https');
  assert.ok(job.tls_config?.ca_file !== undefined && job.tls_config.insecure_skip_verify !== true && job.tls_config.server_name === undefined, JSON.stringify(job.tls_config));
  const manifests = loadManifests(K8S_SECURE_DIR);
  const set = find<IStatefulSet>(manifests, 'StatefulSet');
  // A pod of something else in the namespace, with the same annotations, is not an SCM.
  const stranger = { ...discoveredTargets(manifests)[0], __meta_kubernetes_pod_label_app_kubernetes_io_name: 'other', __meta_kubernetes_pod_name: 'other-0' };
  const targets = [...discoveredTargets(manifests), stranger].map((t) => relabel(t, job.relabel_configs ?? [])).filter((t) => t !== undefined);
  const expected = [0, 1, 2].map((ordinal) => {
    const { env } = podEnvironment(manifests, set, scmContainer(set), ordinal, NAMESPACE);
    const self = requireSelf(loadConfig({ env }));
    // self.host is the address the pod's certificate names (k8s-secure.test.ts checks the certificates).
    return { address: `${self.host}:${self.httpsPort}`, path: '/prom', cluster: 'scmservice', namespace: NAMESPACE, pod: self.nodeId };
  });
  assert.deepEqual(
    targets.map((t) => ({ address: t['__address__'], path: t['__metrics_path__'] ?? job.metrics_path ?? '/metrics', cluster: t['cluster'], namespace: t['namespace'], pod: t['pod'] })),
    expected,
  );
  // The plaintext pods do not ask for HTTPS: this job leaves them to a plaintext one.
  assert.deepEqual(discoveredTargets(loadManifests(K8S_DIR)).map((t) => relabel(t, job.relabel_configs ?? [])).filter((t) => t !== undefined), []);
});

test('relabel follows Prometheus: anchored regexes, joined source labels, $N replacement, keep', () => {
  const rules: RelabelConfig[] = [
    { source_labels: ['a', 'b'], regex: 'x;(.*)', action: 'keep' },
    { source_labels: ['a', 'b'], regex: '(.+);(.+)', replacement: '$2-${1}', target_label: 'c' },
    { source_labels: ['missing'], regex: '(.+)', target_label: 'a' },
  ];
  assert.deepEqual(relabel({ a: 'x', b: 'y' }, rules), { a: 'x', b: 'y', c: 'y-x' });
  assert.equal(relabel({ a: 'xx', b: 'y' }, rules), undefined, 'regexes match the whole value');
});
