// deploy/kubernetes/secure/, the secure variant of the Kubernetes manifests, validated offline: the
// objects parse and validate against the same pinned schemas as the plaintext ones; the cross
// references hold, TLS ones included (the Secret volume's items are the files each pod's
// OZONE-SITE.XML_ TLS keys name, its own certificate per pod; probes, the preStop hook and the
// Prometheus annotations use HTTPS on the HTTPS port); the variant differs from the plaintext
// manifests in TLS only, so the two cannot drift apart; and the certificates `scm certs
// --kubernetes-namespace` makes, stored as the command it prints says, pass every check each pod's
// node makes at start.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, posix } from 'node:path';
import type { IConfigMap } from 'kubernetes-models/v1/ConfigMap';
import type { IStatefulSet } from 'kubernetes-models/apps/v1/StatefulSet';
import type { IContainer } from 'kubernetes-models/v1/Container';
import { runCli } from '../../src/cli/run.js';
import { loadConfig, requireSelf } from '../../src/server/config.js';
import { loadTls } from '../../src/server/tls.js';
import {
  crossReferenceProblems,
  find,
  K8S_DIR,
  K8S_SECURE_DIR,
  KUBERNETES_SCHEMA_VERSION,
  loadManifests,
  podEnvironment,
  scmContainer,
  schemaProblems,
  strictFieldProblems,
  type Manifest,
} from './k8s-manifests.js';
import { ENV_PREFIX, ROOT } from './deploy-files.js';
import { calls, stubScm } from './stub-scm.js';

const manifests = loadManifests(K8S_SECURE_DIR);
const plaintext = loadManifests(K8S_DIR);
const NAMESPACE = 'scm-test';
const PODS = ['scm-0', 'scm-1', 'scm-2'];

function changed(change: (copy: Manifest[]) => void): Manifest[] {
  const copy = structuredClone(manifests);
  change(copy);
  return copy;
}
const statefulSet = (copy: readonly Manifest[]): IStatefulSet => find<IStatefulSet>(copy, 'StatefulSet');
const container = (copy: readonly Manifest[]): IContainer => scmContainer(statefulSet(copy));
const configData = (copy: readonly Manifest[]): Record<string, string> => {
  const data = find<IConfigMap>(copy, 'ConfigMap', 'scm-config').data;
  assert.ok(data);
  return data;
};
const envVar = (copy: readonly Manifest[], name: string) => {
  const variable = container(copy).env?.find((e) => e.name === name);
  assert.ok(variable, `no env ${name}`);
  return variable;
};
const tlsVolume = (copy: readonly Manifest[]) => {
  const secret = statefulSet(copy).spec?.template.spec?.volumes?.find((v) => v.name === 'tls')?.secret;
  assert.ok(secret?.items);
  return secret;
};
const podEnv = (copy: readonly Manifest[], ordinal: number): Record<string, string> => {
  const set = statefulSet(copy);
  const { env, problems } = podEnvironment(copy, set, scmContainer(set), ordinal, NAMESPACE);
  assert.deepEqual(problems, []);
  return env;
};

test(`deploy/kubernetes/secure: the objects parse, validate against the Kubernetes ${KUBERNETES_SCHEMA_VERSION} OpenAPI schemas and declare no unknown field`, () => {
  assert.deepEqual(
    manifests.map((m) => `${m.object.kind}/${m.object.metadata.name}`).sort(),
    ['ConfigMap/scm-config', 'PodDisruptionBudget/scm', 'Service/scm', 'StatefulSet/scm'],
  );
  assert.deepEqual(schemaProblems(manifests), []);
  assert.deepEqual(strictFieldProblems(manifests), []);
  // The checks bite here too: a Secret volume item without its key.
  const noKey = changed((c) => delete (tlsVolume(c).items?.[0] as { key?: string }).key);
  assert.match(schemaProblems(noKey).join('\n'), /StatefulSet\/scm: .*must have required property '?key'?/);
});

test('deploy/kubernetes/secure: cross references, TLS included, agree', () => {
  assert.deepEqual(crossReferenceProblems(manifests), []);
});

test('deploy/kubernetes/secure: each pod loads as itself with mutual TLS, its own certificate from the Secret, the admin identity and HTTPS only', () => {
  for (const [ordinal, pod] of PODS.entries()) {
    const config = loadConfig({ env: podEnv(manifests, ordinal) });
    const self = requireSelf(config);
    assert.equal(config.nodeId, pod);
    assert.equal(config.security.enabled, true);
    assert.deepEqual(config.security.tls, { caFile: '/etc/scm/tls/ca.crt', certFile: `/etc/scm/tls/${pod}.crt`, keyFile: `/etc/scm/tls/${pod}.key` });
    assert.deepEqual(config.security.clientTls, { caFile: '/etc/scm/tls/ca.crt', certFile: '/etc/scm/tls/admin.crt', keyFile: '/etc/scm/tls/admin.key' });
    assert.deepEqual(config.security.administrators, ['admin']);
    assert.equal(config.security.httpPolicy, 'HTTPS_ONLY');
    assert.equal(self.host, `${pod}.scm.${NAMESPACE}.svc`);
    assert.equal(self.httpsPort, 9877);
  }
});

test('the TLS cross-reference checks have teeth', () => {
  const cases: [string, (copy: Manifest[]) => void, RegExp][] = [
    [
      'one security switch without the other',
      (c) => delete configData(c)[`${ENV_PREFIX}hdds.grpc.tls.enabled`],
      /pod scm-0: its environment does not load: ozone\.security\.enabled=true but hdds\.grpc\.tls\.enabled is not true/,
    ],
    [
      'security off with the Secret still mounted and HTTPS asked for',
      (c) => {
        const data = configData(c);
        data[`${ENV_PREFIX}ozone.security.enabled`] = 'false';
        data[`${ENV_PREFIX}hdds.grpc.tls.enabled`] = 'false';
      },
      /ozone\.http\.policy=HTTPS_ONLY needs TLS/,
    ],
    [
      'every pod given the same certificate',
      (c) => (envVar(c, `${ENV_PREFIX}ozone.scm.x509.certificate.file`).value = '/etc/scm/tls/scm-0.crt'),
      /pod scm-1: ozone\.scm\.x509\.certificate\.file is the Secret's scm-0\.crt, not this pod's own scm-1\.crt/,
    ],
    [
      'a key file the Secret volume does not hold',
      (c) => (tlsVolume(c).items = (tlsVolume(c).items ?? []).filter((i) => i.key !== 'scm-2.key')),
      /pod scm-2: ozone\.scm\.x509\.private\.key\.file is \/etc\/scm\/tls\/scm-2\.key, which is no item of a Secret volume mounted in the container/,
    ],
    [
      'the CA at a path outside the mount',
      (c) => (configData(c)[`${ENV_PREFIX}hdds.x509.rootca.certificate.file`] = '/etc/ssl/ca.crt'),
      /hdds\.x509\.rootca\.certificate\.file is \/etc\/ssl\/ca\.crt, which is no item/,
    ],
    [
      'a writable Secret mount',
      (c) => {
        const mount = container(c).volumeMounts?.find((m) => m.name === 'tls');
        assert.ok(mount);
        delete mount.readOnly;
      },
      /the Secret volume tls must be mounted readOnly/,
    ],
    [
      'keys readable by everyone',
      (c) => (tlsVolume(c).defaultMode = 0o444),
      /\/etc\/scm\/tls\/scm-0\.key has mode 0444: it must be readable by the group \(fsGroup\) and by no one else/,
    ],
    [
      'no client identity for the admin calls',
      (c) => {
        delete configData(c)[`${ENV_PREFIX}ozone.scm.client.x509.certificate.file`];
        delete configData(c)[`${ENV_PREFIX}ozone.scm.client.x509.private.key.file`];
      },
      /no client identity \(ozone\.scm\.client\.x509\.\*\)/,
    ],
    [
      'an HTTP probe on the HTTPS port',
      (c) => {
        const get = container(c).readinessProbe?.httpGet;
        assert.ok(get);
        delete get.scheme;
      },
      /readinessProbe: probes with scheme HTTP, but the node serves HTTPS on 9877/,
    ],
    [
      'a liveness probe on the plaintext port',
      (c) => {
        const get = container(c).livenessProbe?.httpGet;
        assert.ok(get);
        get.port = 9876;
      },
      /livenessProbe: probes port 9876, but the node serves HTTPS on 9877/,
    ],
    [
      'the plaintext port still declared',
      (c) => container(c).ports?.push({ name: 'http', containerPort: 9876 }),
      /container declares ports client, ratis, grpc, https, http; expected exactly client, ratis, grpc, https/,
    ],
    [
      'a preStop hook reading plaintext /status',
      (c) => {
        const exec = container(c).lifecycle?.preStop?.exec;
        assert.ok(exec);
        exec.command = ['node', '/opt/scm/bin/scm-step-down.mjs', '--http', '127.0.0.1:9876', '--timeout', '20'];
      },
      /preStop --https is undefined, the node serves HTTPS on 127\.0\.0\.1:9877/,
    ],
    [
      'a preStop hook trusting another CA file',
      (c) => {
        const command = container(c).lifecycle?.preStop?.exec?.command;
        assert.ok(command);
        command[command.indexOf('--ca') + 1] = '/etc/scm/tls/admin.crt';
      },
      /preStop --ca is \/etc\/scm\/tls\/admin\.crt, the cluster CA is \/etc\/scm\/tls\/ca\.crt/,
    ],
    [
      'a server name for the hook that is not the pod',
      (c) => (envVar(c, 'SCM_HTTPS_SERVERNAME').value = 'scm.$(POD_NAMESPACE).svc'),
      /pod scm-1: SCM_HTTPS_SERVERNAME is scm\.scm-test\.svc, but the pod's certificate names its address scm-1\.scm\.scm-test\.svc/,
    ],
    [
      'scraping annotations without the scheme',
      (c) => {
        const annotations = statefulSet(c).spec?.template.metadata?.annotations;
        assert.ok(annotations);
        delete annotations['prometheus.io/scheme'];
      },
      /pod annotations must say .* port 9877, scheme https/,
    ],
    [
      'HTTP beside HTTPS',
      (c) => (configData(c)[`${ENV_PREFIX}ozone.http.policy`] = 'HTTP_AND_HTTPS'),
      /ozone\.http\.policy HTTP_AND_HTTPS serves \/status and metrics in plaintext beside HTTPS; use HTTPS_ONLY/,
    ],
    [
      'nobody may transfer leadership',
      (c) => delete configData(c)[`${ENV_PREFIX}ozone.administrators`],
      /ozone\.administrators is empty: nobody may transfer leadership/,
    ],
  ];
  for (const [what, change, expected] of cases) {
    const problems = crossReferenceProblems(changed(change));
    assert.match(problems.join('\n'), expected, `${what}: not caught; problems were:\n${problems.join('\n')}`);
  }
  // The plaintext manifests with a Secret mounted for nothing.
  const plainWithSecret = structuredClone(plaintext);
  const spec = statefulSet(plainWithSecret).spec?.template.spec;
  assert.ok(spec);
  spec.volumes = [{ name: 'tls', secret: { secretName: 'scm-tls' } }];
  scmContainer(statefulSet(plainWithSecret)).volumeMounts?.push({ name: 'tls', mountPath: '/etc/scm/tls', readOnly: true });
  assert.match(crossReferenceProblems(plainWithSecret).join('\n'), /Secret volume tls is mounted, but the node runs in plaintext/);
});

// ---- the secure variant is the plaintext one plus TLS, nothing else ----

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** Paths where `b` differs from `a`; arrays of objects with a name are matched by name (env, ports, mounts, volumes). */
function differences(a: Json | undefined, b: Json | undefined, path: string): string[] {
  if (JSON.stringify(a) === JSON.stringify(b)) return [];
  if (a === undefined) return [`+${path}`];
  if (b === undefined) return [`-${path}`];
  const named = (v: Json[]): v is { name: string }[] => v.length > 0 && v.every((x) => typeof x === 'object' && x !== null && !Array.isArray(x) && typeof x['name'] === 'string');
  if (Array.isArray(a) && Array.isArray(b) && named(a) && named(b)) {
    const byName = (v: { name: string }[]) => new Map(v.map((x) => [x.name, x as Json]));
    const [ma, mb] = [byName(a), byName(b)];
    return [...new Set([...ma.keys(), ...mb.keys()])].flatMap((n) => differences(ma.get(n), mb.get(n), `${path}[${n}]`));
  }
  if (typeof a === 'object' && typeof b === 'object' && a !== null && b !== null && !Array.isArray(a) && !Array.isArray(b)) {
    return [...new Set([...Object.keys(a), ...Object.keys(b)])].flatMap((k) => differences(a[k], b[k], `${path}.${k}`));
  }
  return [`~${path}`];
}

test('deploy/kubernetes/secure differs from deploy/kubernetes in TLS only (the two cannot drift apart)', () => {
  const byKey = (ms: readonly Manifest[]) => new Map(ms.map((m) => [`${m.object.kind}/${m.object.metadata.name}`, m.object as unknown as Json]));
  const [plain, secure] = [byKey(plaintext), byKey(manifests)];
  assert.deepEqual([...secure.keys()].sort(), [...plain.keys()].sort());
  const found = [...plain.keys()].sort().flatMap((k) => differences(plain.get(k), secure.get(k), k));
  const c = 'StatefulSet/scm.spec.template.spec.containers[scm]';
  const tlsKeys = [
    'hdds.grpc.tls.enabled',
    'hdds.x509.rootca.certificate.file',
    'ozone.administrators',
    'ozone.http.policy',
    'ozone.scm.client.x509.certificate.file',
    'ozone.scm.client.x509.private.key.file',
    'ozone.scm.https-address',
    'ozone.security.enabled',
  ];
  assert.deepEqual(found.sort(), [
    ...tlsKeys.map((k) => `+ConfigMap/scm-config.data.${ENV_PREFIX}${k}`),
    '+Service/scm.spec.ports[https]',
    `+${c}.env[${ENV_PREFIX}ozone.scm.x509.certificate.file]`,
    `+${c}.env[${ENV_PREFIX}ozone.scm.x509.private.key.file]`,
    `+${c}.env[SCM_HTTPS_SERVERNAME]`,
    `+${c}.livenessProbe.httpGet.scheme`,
    `+${c}.ports[https]`,
    `+${c}.readinessProbe.httpGet.scheme`,
    `+${c}.startupProbe.httpGet.scheme`,
    `+${c}.volumeMounts[tls]`,
    '+StatefulSet/scm.spec.template.metadata.annotations.prometheus.io/scheme',
    '+StatefulSet/scm.spec.template.spec.volumes',
    '-Service/scm.spec.ports[http]',
    `-${c}.ports[http]`,
    `~${c}.args`,
    `~${c}.lifecycle.preStop.exec.command`,
    `~${c}.livenessProbe.httpGet.port`,
    `~${c}.readinessProbe.httpGet.port`,
    `~${c}.startupProbe.httpGet.port`,
    '~StatefulSet/scm.spec.template.metadata.annotations.prometheus.io/port',
  ].sort());
  // The start script is the plaintext one plus the check that the admin identity's files are readable.
  const script = (ms: readonly Manifest[]): string => (container(ms).args ?? []).join('\n');
  const check = /^ {2}for key in hdds\.x509\.rootca\.certificate\.file .*\n.*\n.*\n {2}done\n/m;
  assert.match(script(manifests), check);
  assert.equal(script(manifests).replace(check, ''), script(plaintext));
});

// ---- certificates for the pods, as the README says to make them ----

test('scm certs --kubernetes-namespace: each pod’s certificate names scm://scmservice/<pod> and its DNS name, the printed kubectl command stores exactly the Secret items, and every pod passes its start-up checks with them', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'scm-k8s-certs-'));
  try {
    const cli = async (...argv: string[]) => {
      let out = '';
      let err = '';
      const code = await runCli(argv, { stdout: (t) => (out += t), stderr: (t) => (err += t), env: {} });
      return { code, out, err };
    };
    const made = await cli('certs', '--dir', dir, '--nodes', PODS.join(','), '--kubernetes-namespace', NAMESPACE);
    assert.equal(made.code, 0, made.err);

    // The command it prints: the Secret scm-tls with one key per file, applied (create or update).
    assert.match(made.out, new RegExp(`kubectl -n ${NAMESPACE} create secret generic scm-tls \\\\\n`));
    assert.match(made.out, new RegExp(`--dry-run=client -o yaml \\| kubectl -n ${NAMESPACE} apply -f -\n`));
    const stored = new Map([...made.out.matchAll(/--from-file=([^=\s]+)=(\S+) \\/g)].map((m) => [m[1] ?? '', m[2] ?? '']));
    const items = tlsVolume(manifests).items ?? [];
    assert.deepEqual([...stored.keys()].sort(), items.map((i) => i.key).sort(), 'the Secret must hold exactly the items the pods mount');
    assert.ok(![...stored.values()].some((f) => f.endsWith('ca.key')), "the CA's key never goes into the cluster");
    const statefulSetObject = statefulSet(manifests);
    const mountPath = scmContainer(statefulSetObject).volumeMounts?.find((m) => m.name === 'tls')?.mountPath;
    assert.ok(mountPath !== undefined);
    /** A path inside the pod's Secret mount, as the file the command stores under that item's key. */
    const onHost = (path: string): string => {
      const item = items.find((i) => posix.join(mountPath ?? '', i.path) === path);
      const file = item === undefined ? undefined : stored.get(item.key);
      assert.ok(file !== undefined, `${path} is not in the Secret`);
      return file;
    };

    for (const [ordinal, pod] of PODS.entries()) {
      const config = loadConfig({ env: podEnv(manifests, ordinal) });
      const self = requireSelf(config);
      const tls = config.security.tls;
      assert.ok(tls);
      const cert = new X509Certificate(readFileSync(onHost(tls.certFile)));
      assert.equal(cert.subjectAltName, `URI:scm://scmservice/${pod}, DNS:${pod}.scm.${NAMESPACE}.svc, DNS:${pod}.scm.${NAMESPACE}.svc.cluster.local`);
      assert.equal(cert.checkHost(self.host), self.host, 'the address the configuration gives the pod');
      assert.equal(cert.checkIP('127.0.0.1'), undefined);
      // What the node checks at start: its own identity and address, the CA chain, the key.
      const loaded = loadTls({ caFile: onHost(tls.caFile), certFile: onHost(tls.certFile), keyFile: onHost(tls.keyFile) }, { kind: 'node', serviceId: config.serviceId, nodeId: pod, host: self.host });
      assert.equal(loaded.identity.node?.nodeId, pod);
      // Another pod's certificate would not pass for this one.
      const other = PODS[(ordinal + 1) % PODS.length] ?? '';
      const otherFiles = { caFile: onHost(tls.caFile), certFile: stored.get(`${other}.crt`) ?? '', keyFile: stored.get(`${other}.key`) ?? '' };
      assert.throws(() => loadTls(otherFiles, { kind: 'node', serviceId: config.serviceId, nodeId: pod, host: self.host }), new RegExp(`is the certificate of node ${other} of scmservice`));
      const admin = config.security.clientTls;
      assert.ok(admin);
      const identity = loadTls({ caFile: onHost(admin.caFile), certFile: onHost(admin.certFile), keyFile: onHost(admin.keyFile) }, { kind: 'client' }).identity;
      assert.ok(config.security.administrators.includes(identity.name ?? ''), `the pods' admin identity ${String(identity.name)} must be an administrator`);
    }

    // A second run for another namespace does not pass the old certificates off as new ones.
    const again = await cli('certs', '--dir', dir, '--nodes', PODS.join(','), '--kubernetes-namespace', 'other');
    assert.equal(again.code, 1);
    assert.match(again.err, /scm-0\.crt was kept from an earlier run and names DNS:scm-0\.scm\.scm-test\.svc.*not scm-0\.scm\.other\.svc/);
    const badNode = await cli('certs', '--dir', dir, '--nodes', 'SCM_0', '--kubernetes-namespace', NAMESPACE);
    assert.equal(badNode.code, 2);
    assert.match(badNode.err, /node id "SCM_0" cannot be a pod name/);

    // The preStop hook, as the pod runs it (its command unexpanded, its environment), reads /status
    // over HTTPS from a server with the pod's certificate, checked for the pod's DNS name.
    const pod = 'scm-1';
    const server = createServer({ cert: readFileSync(stored.get(`${pod}.crt`) ?? ''), key: readFileSync(stored.get(`${pod}.key`) ?? '') }, (_req, res) => {
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ nodeId: pod, role: 'LEADER', term: 3, leaderId: pod, peers: [{ id: pod, voter: true, matchIndex: 5 }, { id: 'scm-2', voter: true, matchIndex: 5 }] }));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    try {
      stubScm(dir);
      const log = join(dir, 'calls.log');
      const env = podEnv(manifests, 1);
      const command = (container(manifests).lifecycle?.preStop?.exec?.command ?? []).map((a) =>
        a === '127.0.0.1:9877' ? `127.0.0.1:${port}` : a === '/etc/scm/tls/ca.crt' ? onHost(a) : a.replace('/opt/scm/bin/', join(ROOT, 'bin/')),
      );
      const [node, ...args] = command;
      assert.equal(node, 'node');
      const result = await new Promise<{ code: number | null; out: string }>((resolve, reject) => {
        const child = spawn(process.execPath, args, { env: { ...env, PATH: `${join(dir, 'bin')}:/usr/bin:/bin`, STUB_LOG: log } });
        let out = '';
        child.stdout.on('data', (d: Buffer) => (out += d.toString()));
        child.stderr.on('data', (d: Buffer) => (out += d.toString()));
        child.once('error', reject);
        child.once('close', (code) => resolve({ code, out }));
      });
      assert.equal(result.code, 0, result.out);
      assert.deepEqual(
        calls(log).map((c) => c.args),
        [`admin scm transfer --scm ${env['SCM_CLIENT_ADDRESSES'] ?? ''} --new-leader-id scm-2 --timeout 20`],
      );
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
