// The container start script of deploy/kubernetes/statefulset.yaml (and of the secure variant in
// deploy/kubernetes/secure/), exercised offline: the command is run by its shell exactly as the
// kubelet would after expanding $(VAR) references, with each pod's environment as the kubelet
// computes it and a stand-in `scm` on PATH.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { IStatefulSet } from 'kubernetes-models/apps/v1/StatefulSet';
import { loadConfig } from '../../src/server/config.js';
import { expandKubernetesVars, find, K8S_SECURE_DIR, loadManifests, podEnvironment, scmContainer, type Manifest } from './k8s-manifests.js';
import { ENV_PREFIX } from './deploy-files.js';
import { calls, stubScm } from './stub-scm.js';

const plaintext = loadManifests();
const secure = loadManifests(K8S_SECURE_DIR);

interface StartRun {
  readonly status: number | null;
  readonly stderr: string;
  readonly calls: ReturnType<typeof calls>;
  readonly marker: string;
  readonly addresses: string;
}

/**
 * Runs the container's command for pod scm-<ordinal>, its data directory in `dir`. The secure
 * variant's files under /etc/scm/tls are made in `dir` (but for `missing`, as from a Secret without it).
 */
function runStart(
  dir: string,
  ordinal: number,
  options: { adminExit?: number; versionExists?: boolean; unset?: string; manifests?: Manifest[]; missing?: string } = {},
): StartRun {
  const manifests = options.manifests ?? plaintext;
  const set = find<IStatefulSet>(manifests, 'StatefulSet');
  const container = scmContainer(set);
  const { env: podEnv, problems } = podEnvironment(manifests, set, container, ordinal, 'scm-test');
  assert.deepEqual(problems, []);
  const log = join(dir, `calls-${ordinal}.log`);
  rmSync(log, { force: true });
  const env: Record<string, string> = { ...podEnv, [`${ENV_PREFIX}ozone.scm.db.dirs`]: join(dir, `metadata-${ordinal}`) };
  for (const [name, value] of Object.entries(env)) {
    if (!name.startsWith(ENV_PREFIX) || !value.startsWith('/etc/scm/tls/')) continue;
    const file = join(dir, 'tls', value.slice('/etc/scm/tls/'.length));
    mkdirSync(join(file, '..'), { recursive: true });
    if (options.missing !== undefined && file.endsWith(options.missing)) rmSync(file, { force: true });
    else {
      writeFileSync(file, 'PEM\n');
      chmodSync(file, 0o440);
    }
    env[name] = file;
  }
  if (options.unset !== undefined) delete env[options.unset];
  // The marker must be the VERSION file of the directory the node itself uses for scm.db.
  const marker = options.unset === undefined ? join(loadConfig({ env }).dbDir, 'scm/current/VERSION') : '';
  if (options.versionExists === true) {
    mkdirSync(join(marker, '..'), { recursive: true });
    writeFileSync(marker, 'clusterID=CID-test\n');
  }
  const argv = [...(container.command ?? []), ...(container.args ?? [])].map((a) => expandKubernetesVars(a, (n) => env[n]));
  const [command, ...args] = argv;
  assert.ok(command !== undefined);
  const result = spawnSync(command, args, {
    env: { ...env, PATH: `${join(dir, 'bin')}:/usr/bin:/bin`, STUB_LOG: log, STUB_ADMIN_EXIT: String(options.adminExit ?? 1) },
    encoding: 'utf8',
  });
  return { status: result.status, stderr: result.stderr, calls: calls(log), marker, addresses: env['SCM_CLIENT_ADDRESSES'] ?? '' };
}

test('start script: on first start scm-0 initialises (after checking no SCM answers) and the others bootstrap', () => {
  const dir = mkdtempSync(join(tmpdir(), 'scm-k8s-start-'));
  try {
    stubScm(dir);
    const first = runStart(dir, 0);
    assert.equal(first.status, 0, first.stderr);
    assert.deepEqual(first.calls, [
      { args: `admin scm roles --scm ${first.addresses} --timeout 10`, initialized: '', bootstrapped: '', nodeId: 'scm-0' },
      { args: 'start', initialized: first.marker, bootstrapped: '', nodeId: 'scm-0' },
    ]);
    assert.equal(first.addresses, 'scm-0.scm.scm-test.svc:9860,scm-1.scm.scm-test.svc:9860,scm-2.scm.scm-test.svc:9860');
    for (const ordinal of [1, 2]) {
      const other = runStart(dir, ordinal);
      assert.equal(other.status, 0, other.stderr);
      assert.deepEqual(other.calls, [{ args: 'start', initialized: '', bootstrapped: other.marker, nodeId: `scm-${ordinal}` }]);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('start script: a restart on existing data just starts (the ENSURE_ marker exists, so scm start skips init/bootstrap)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'scm-k8s-start-'));
  try {
    stubScm(dir);
    const first = runStart(dir, 0, { versionExists: true, adminExit: 0 });
    assert.equal(first.status, 0, first.stderr);
    assert.deepEqual(first.calls, [{ args: 'start', initialized: first.marker, bootstrapped: '', nodeId: 'scm-0' }], 'no peer check on existing data');
    const other = runStart(dir, 2, { versionExists: true });
    assert.deepEqual(other.calls, [{ args: 'start', initialized: '', bootstrapped: other.marker, nodeId: 'scm-2' }]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('start script: scm-0 with an empty disk next to running SCMs refuses to initialise a second cluster', () => {
  const dir = mkdtempSync(join(tmpdir(), 'scm-k8s-start-'));
  try {
    stubScm(dir);
    const run = runStart(dir, 0, { adminExit: 0 });
    assert.equal(run.status, 1);
    assert.match(run.stderr, /scm-0: .*VERSION is missing, but SCMs already answer at scm-0\.scm\.scm-test\.svc:9860,.*refusing to initialise a second cluster/);
    assert.deepEqual(run.calls.map((c) => c.args), [`admin scm roles --scm ${run.addresses} --timeout 10`], 'scm start must not run');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('start script: a missing setting stops it with the variable named, before anything runs', () => {
  const dir = mkdtempSync(join(tmpdir(), 'scm-k8s-start-'));
  try {
    stubScm(dir);
    for (const key of ['ozone.scm.node.id', 'ozone.scm.primordial.node.id', 'ozone.scm.db.dirs']) {
      for (const ordinal of [0, 1]) {
        const run = runStart(dir, ordinal, { unset: `${ENV_PREFIX}${key}` });
        assert.notEqual(run.status, 0, `scm-${ordinal} without ${key}`);
        assert.ok(run.stderr.includes(`${ENV_PREFIX}${key} is not set`), run.stderr);
        assert.deepEqual(run.calls, []);
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('secure variant: the same first start, restart and refusal; the primordial pod first checks it can read the admin identity', () => {
  const dir = mkdtempSync(join(tmpdir(), 'scm-k8s-start-'));
  try {
    stubScm(dir);
    const first = runStart(dir, 0, { manifests: secure });
    assert.equal(first.status, 0, first.stderr);
    assert.deepEqual(first.calls, [
      { args: `admin scm roles --scm ${first.addresses} --timeout 10`, initialized: '', bootstrapped: '', nodeId: 'scm-0' },
      { args: 'start', initialized: first.marker, bootstrapped: '', nodeId: 'scm-0' },
    ]);
    const other = runStart(dir, 2, { manifests: secure });
    assert.deepEqual(other.calls, [{ args: 'start', initialized: '', bootstrapped: other.marker, nodeId: 'scm-2' }]);
    const refused = runStart(dir, 0, { manifests: secure, adminExit: 0 });
    assert.equal(refused.status, 1);
    assert.match(refused.stderr, /refusing to initialise a second cluster/);

    const missing = runStart(dir, 0, { manifests: secure, missing: 'admin.key' });
    assert.equal(missing.status, 1);
    assert.match(missing.stderr, /scm-0: cannot read .*admin\.key \(ozone\.scm\.client\.x509\.private\.key\.file\): is the Secret scm-tls mounted with it\?/);
    assert.deepEqual(missing.calls, [], 'neither the check for running SCMs (it would read as "none") nor scm start');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
