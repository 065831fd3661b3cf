// The secure variant of the compose deployment (docker-compose.tls.yml over docker-compose.yml):
// docker-compose accepts it, each SCM service's environment loads into a TLS configuration of that
// very node with the certificate files where compose mounts them, the certificates `scm certs`
// makes (as the file's header says to run it) pass every check a node makes at start, the
// healthcheck works against a real HTTPS endpoint, and Prometheus scrapes HTTPS with the CA.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureLocalCertificates } from '../../src/cli/local-certificates.js';
import { loadConfig, requireSelf } from '../../src/server/config.js';
import { findKeySpec } from '../../src/server/config-keys.js';
import { loadTls } from '../../src/server/tls.js';
import { COMPOSE_FILE, COMPOSE_TLS_FILE, DOCKER_COMPOSE, ENV_PREFIX, ROOT, SCM_SERVICES, readYaml, resolvedCompose } from './deploy-files.js';

const MOUNT = '/etc/scm/tls';

function ozoneEnv(environment: Record<string, string | null> | undefined): Record<string, string> {
  return Object.fromEntries(Object.entries(environment ?? {}).filter((e): e is [string, string] => e[1] !== null));
}

test('docker-compose config -q accepts docker-compose.yml with docker-compose.tls.yml', () => {
  const result = spawnSync(DOCKER_COMPOSE, ['-f', COMPOSE_FILE, '-f', COMPOSE_TLS_FILE, 'config', '-q'], { cwd: ROOT, encoding: 'utf8' });
  assert.equal(`${result.stdout}${result.stderr}`.trim(), '');
  assert.equal(result.status, 0);
});

test('TLS variant: each SCM loads as that node with mutual TLS, HTTPS, admin as administrator and the mounted certificates; scm certs makes certificates that pass', async () => {
  const compose = resolvedCompose(COMPOSE_TLS_FILE);
  const dir = await mkdtemp(join(tmpdir(), 'scm-compose-tls-'));
  try {
    // As the compose file's header says: node bin/scm.js certs --dir . --nodes scm1,scm2,scm3
    const certs = await ensureLocalCertificates({ dir, serviceId: 'scmservice', nodeIds: [...SCM_SERVICES], hosts: (id) => [id, 'localhost', '127.0.0.1'] });
    const onHost = (path: string): string => path.replace(MOUNT, certs.dir);
    for (const name of SCM_SERVICES) {
      const service = compose.services[name];
      assert.ok(service);
      const env = ozoneEnv(service.environment);
      for (const variable of Object.keys(env).filter((v) => v.startsWith(ENV_PREFIX))) {
        const spec = findKeySpec(variable.slice(ENV_PREFIX.length));
        assert.ok(spec?.used === true, `${name}: ${variable} is not a key the node uses`);
      }
      const config = loadConfig({ env });
      const self = requireSelf(config);
      assert.equal(config.nodeId, name);
      assert.equal(config.security.enabled, true);
      assert.deepEqual(config.security.tls, { caFile: `${MOUNT}/ca.crt`, certFile: `${MOUNT}/${name}.crt`, keyFile: `${MOUNT}/${name}.key` });
      assert.deepEqual(config.security.clientTls, { caFile: `${MOUNT}/ca.crt`, certFile: `${MOUNT}/admin.crt`, keyFile: `${MOUNT}/admin.key` });
      assert.deepEqual(config.security.administrators, ['admin']);
      assert.equal(config.security.httpPolicy, 'HTTPS_ONLY');
      assert.equal(self.httpsPort, 9877);
      assert.ok((service.volumes ?? []).some((v) => v.endsWith(`/tls:${MOUNT}:ro`)), `${name} must mount ./tls at ${MOUNT}: ${JSON.stringify(service.volumes)}`);
      // The certificate scm certs made for this node passes the checks the node makes at start.
      const files = config.security.tls!;
      const loaded = loadTls({ caFile: onHost(files.caFile), certFile: onHost(files.certFile), keyFile: onHost(files.keyFile) }, { kind: 'node', serviceId: config.serviceId, nodeId: name, host: self.host });
      assert.equal(loaded.identity.node?.nodeId, name);
      const admin = config.security.clientTls!;
      assert.equal(loadTls({ caFile: onHost(admin.caFile), certFile: onHost(admin.certFile), keyFile: onHost(admin.keyFile) }, { kind: 'client' }).identity.name, 'admin');
      const probe = (service.healthcheck?.test ?? []).join(' ');
      assert.match(probe, /port: 9877, path: '\/healthz'/);
      assert.ok(probe.includes(`readFileSync('${MOUNT}/ca.crt')`));
    }

    // The healthcheck, run as compose runs it, against an HTTPS server with scm1's certificate.
    let code = 200;
    const server = createServer({ cert: await readFile(certs.nodes.get('scm1')!.cert), key: await readFile(certs.nodes.get('scm1')!.key) }, (_req, res) => {
      res.writeHead(code);
      res.end();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as { port: number };
    try {
      const probe = compose.services.scm1?.healthcheck?.test ?? [];
      const args = probe.slice(2).map((a) => a.replace('port: 9877', `port: ${port}`).replace(`${MOUNT}/ca.crt`, certs.ca.cert));
      const run = () =>
        new Promise<number | null>((resolve, reject) => {
          const child = spawn(process.execPath, args, { stdio: 'ignore' });
          child.once('error', reject);
          child.once('exit', (status) => resolve(status));
        });
      assert.equal(await run(), 0);
      code = 503;
      assert.equal(await run(), 1);
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('TLS variant: Prometheus scrapes every SCM over HTTPS with the CA compose mounts', () => {
  const check = spawnSync('/usr/bin/promtool', ['check', 'config', `${ROOT}deploy/prometheus/prometheus-tls.yml`], { encoding: 'utf8' });
  assert.equal(check.status, 0, `${check.stdout}${check.stderr}`);
  const config = readYaml('deploy/prometheus/prometheus-tls.yml') as {
    rule_files: string[];
    scrape_configs: { job_name: string; scheme: string; metrics_path: string; tls_config: { ca_file: string }; static_configs: { targets: string[] }[] }[];
  };
  assert.deepEqual(config.rule_files, ['alerts.yml']);
  const job = config.scrape_configs.find((j) => j.job_name === 'scm');
  assert.ok(job);
  assert.equal(job.scheme, 'https');
  assert.equal(job.metrics_path, '/prom');
  assert.deepEqual(job.static_configs.flatMap((s) => s.targets).sort(), SCM_SERVICES.map((s) => `${s}:9877`));
  const prometheus = resolvedCompose(COMPOSE_TLS_FILE).services.prometheus;
  assert.ok(prometheus);
  assert.ok(prometheus.command?.includes('--config.file=/etc/prometheus/prometheus-tls.yml'));
  assert.ok(prometheus.volumes?.some((v) => v.endsWith(`/tls/ca.crt:${job.tls_config.ca_file}:ro`)), JSON.stringify(prometheus.volumes));
});
