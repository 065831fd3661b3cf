import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { NodeMetrics } from '../../src/metrics/node-metrics.js';
import {
  COMPOSE_FILE,
  DOCKER_COMPOSE,
  ENV_PREFIX,
  ROOT,
  SCM_SERVICES,
  dockerfileInstructions,
  readYaml,
  resolvedCompose,
} from './deploy-files.js';

test('docker-compose config -q accepts docker-compose.yml', () => {
  const result = spawnSync(DOCKER_COMPOSE, ['-f', COMPOSE_FILE, 'config', '-q'], { cwd: ROOT, encoding: 'utf8' });
  assert.equal(`${result.stdout}${result.stderr}`.trim(), '');
  assert.equal(result.status, 0);
});

test('the three SCM services: Ozone env config, own volumes, healthcheck, init on scm1, bootstrap on the others', () => {
  const compose = resolvedCompose();
  for (const name of SCM_SERVICES) {
    const service = compose.services[name];
    assert.ok(service, `service ${name} missing`);
    assert.ok(service.build !== undefined, `${name} must be built from the local Dockerfile`);
    assert.equal(service.entrypoint, undefined, `${name} must keep the image's scm entrypoint`);
    assert.deepEqual(service.command, ['start']);
    const env = service.environment ?? {};
    // Configuration only through OZONE-SITE.XML_ variables (plus the init/bootstrap markers and log level).
    for (const key of Object.keys(env)) {
      assert.ok(
        key.startsWith(ENV_PREFIX) || ['ENSURE_SCM_INITIALIZED', 'ENSURE_SCM_BOOTSTRAPPED', 'SCM_LOG_LEVEL'].includes(key),
        `${name} sets ${key}, which is not an OZONE-SITE.XML_ variable`,
      );
    }
    assert.equal(env[`${ENV_PREFIX}ozone.scm.node.id`], name);
    assert.deepEqual(
      [...(service.volumes ?? [])].sort(),
      [`${name}-metadata:/data/metadata:rw`, `${name}-ratis:/data/ratis:rw`],
    );
    assert.ok(compose.volumes?.[`${name}-metadata`] !== undefined && compose.volumes[`${name}-ratis`] !== undefined);
    const probe = (service.healthcheck?.test ?? []).join(' ');
    assert.match(probe, /^CMD node -e .*fetch\('http:\/\/127\.0\.0\.1:9876\/healthz'/);
    if (name === 'scm1') {
      assert.equal(env.ENSURE_SCM_INITIALIZED, '/data/metadata/scm/current/VERSION');
      assert.equal(env.ENSURE_SCM_BOOTSTRAPPED, undefined);
      assert.equal(service.depends_on, undefined);
    } else {
      assert.equal(env.ENSURE_SCM_BOOTSTRAPPED, '/data/metadata/scm/current/VERSION');
      assert.equal(env.ENSURE_SCM_INITIALIZED, undefined);
      assert.deepEqual(service.depends_on, { scm1: { condition: 'service_healthy' } });
    }
  }
});

test('the healthcheck command works: node -e exits 0 on 200 and 1 otherwise', async () => {
  // Run the exact probe from the compose file against a local server on 9876's stand-in.
  const { createServer } = await import('node:http');
  let code = 200;
  const server = createServer((_req, res) => {
    res.writeHead(code);
    res.end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  try {
    const probe = resolvedCompose().services.scm1?.healthcheck?.test ?? [];
    assert.equal(probe[0], 'CMD');
    const [command, ...args] = probe.slice(1).map((a) => a.replace(':9876/', `:${port}/`));
    assert.equal(command, 'node');
    // Asynchronous spawn: the server answering the probe lives in this very event loop.
    const run = () =>
      new Promise<number | null>((resolve, reject) => {
        const child = spawn(process.execPath, args, { stdio: 'ignore' });
        child.once('error', reject);
        child.once('exit', (status) => resolve(status));
      });
    assert.equal(await run(), 0);
    code = 503;
    assert.equal(await run(), 1);
    // Nothing listening: the probe fails instead of hanging.
    await new Promise<void>((resolve) => server.close(() => resolve()));
    assert.equal(await run(), 1);
  } finally {
    if (server.listening) await new Promise<void>((resolve) => server.close(() => resolve()));
  }
});

test('prometheus.yml is valid, scrapes every SCM service on /prom and loads the alert rules', () => {
  const check = spawnSync('/usr/bin/promtool', ['check', 'config', `${ROOT}deploy/prometheus/prometheus.yml`], { encoding: 'utf8' });
  assert.equal(check.status, 0, `${check.stdout}${check.stderr}`);
  // promtool checks the rule files the config names, so the rules are loaded from where it says.
  assert.match(check.stdout, /SUCCESS: \d+ rules found/);
  const config = readYaml('deploy/prometheus/prometheus.yml') as {
    rule_files: string[];
    scrape_configs: { job_name: string; metrics_path: string; static_configs: { targets: string[] }[] }[];
  };
  assert.deepEqual(config.rule_files, ['alerts.yml']);
  const job = config.scrape_configs.find((j) => j.job_name === 'scm');
  assert.ok(job);
  assert.equal(job.metrics_path, '/prom');
  assert.deepEqual(job.static_configs.flatMap((s) => s.targets).sort(), SCM_SERVICES.map((s) => `${s}:9876`));
  const prometheus = resolvedCompose().services.prometheus;
  assert.ok(prometheus?.image?.startsWith('prom/prometheus') === true);
  // The whole directory is mounted, so prometheus.yml finds alerts.yml next to it.
  assert.ok(prometheus.volumes?.some((v) => v.endsWith('deploy/prometheus:/etc/prometheus:ro')), JSON.stringify(prometheus.volumes));
  assert.ok(prometheus.command?.includes('--config.file=/etc/prometheus/prometheus.yml'));
});

test('grafana: provisioned data source and dashboard use existing metric names and the data source variable', async () => {
  const compose = resolvedCompose();
  const grafana = compose.services.grafana;
  assert.ok(grafana?.image?.startsWith('grafana/grafana') === true);
  assert.ok(grafana.volumes?.some((v) => v.endsWith('deploy/grafana/provisioning:/etc/grafana/provisioning:ro')));
  assert.ok(grafana.volumes?.some((v) => v.endsWith('deploy/grafana/dashboards:/var/lib/grafana/dashboards:ro')));

  const datasources = readYaml('deploy/grafana/provisioning/datasources/prometheus.yml') as {
    datasources: { uid: string; type: string; url: string }[];
  };
  const [ds] = datasources.datasources;
  assert.ok(ds);
  assert.equal(ds.type, 'prometheus');
  assert.equal(ds.url, 'http://prometheus:9090');
  const providers = readYaml('deploy/grafana/provisioning/dashboards/scm-ha.yml') as { providers: { options: { path: string } }[] };
  assert.equal(providers.providers[0]?.options.path, '/var/lib/grafana/dashboards');

  const dashboard = JSON.parse(readFileSync(`${ROOT}deploy/grafana/dashboards/scm-ha.json`, 'utf8')) as {
    templating: { list: { name: string; type: string; current?: { value: string } }[] };
    panels: { title: string; type: string; datasource?: { uid: string }; targets?: { expr: string; datasource?: { uid: string } }[] }[];
  };
  // Panels use the data source variable, which defaults to the provisioned data source.
  const variable = dashboard.templating.list.find((v) => v.type === 'datasource');
  assert.equal(variable?.current?.value, ds.uid);
  const uid = `\${${variable.name}}`;
  // Every metric the dashboard queries must be one NodeMetrics exposes (so a rename breaks this test).
  const exposition = await new NodeMetrics({ nodeId: 'x' }).render();
  const exposed = new Set([...exposition.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1]));
  const titles = dashboard.panels.map((p) => p.title.toLowerCase());
  for (const wanted of ['leader', 'term', 'commit', 'fsync', 'lag', 'snapshot']) {
    assert.ok(titles.some((t) => t.includes(wanted)), `no panel about ${wanted}`);
  }
  for (const panel of dashboard.panels.filter((p) => p.type !== 'row')) {
    assert.equal(panel.datasource?.uid, uid, `panel ${panel.title} uses another data source`);
    for (const target of panel.targets ?? []) {
      assert.equal(target.datasource?.uid, uid);
      for (const [name] of target.expr.matchAll(/\bscm_[a-z_]+/g)) {
        if (name === 'scm_node_id') continue; // the node label, not a metric
        const family = name.replace(/_(bucket|sum|count)$/, '');
        assert.ok(exposed.has(family), `panel "${panel.title}" queries ${name}, which NodeMetrics does not expose`);
      }
    }
  }
});

test('Dockerfile: multi-stage on the current Node LTS slim image, non-root, scm entrypoint, the four ports', () => {
  const instructions = dockerfileInstructions();
  const froms = instructions.filter(([k]) => k === 'FROM').map(([, v]) => v);
  assert.ok(froms.length >= 2, 'expected a build and a runtime stage');
  for (const from of froms) assert.match(from, /^node:24-bookworm-slim\b/);
  const runs = instructions.filter(([k]) => k === 'RUN').map(([, v]) => v).join('\n');
  assert.match(runs, /npm ci\b/);
  assert.match(runs, /npm run build/);
  assert.match(runs, /npm ci --omit=dev/);
  const users = instructions.filter(([k]) => k === 'USER').map(([, v]) => v);
  assert.ok(users.length > 0 && !['root', '0'].includes(users.at(-1) ?? ''), 'the runtime must not run as root');
  assert.deepEqual(instructions.filter(([k]) => k === 'ENTRYPOINT').map(([, v]) => JSON.parse(v) as unknown), [['scm']]);
  const exposed = instructions.filter(([k]) => k === 'EXPOSE').flatMap(([, v]) => v.split(/\s+/)).sort();
  assert.deepEqual(exposed, ['9860', '9876', '9894', '9895']);
  assert.ok(instructions.some(([k, v]) => k === 'VOLUME' && v === '/data'));
  // Everything the runtime stage copies from the context must not be excluded by .dockerignore.
  const ignored = readFileSync(`${ROOT}.dockerignore`, 'utf8').split('\n').map((l) => l.trim());
  for (const path of ['src', 'proto', 'bin', 'package.json', 'package-lock.json', 'tsconfig.json']) {
    assert.ok(!ignored.includes(path), `.dockerignore excludes ${path}, which the image needs`);
  }
  assert.ok(ignored.includes('node_modules'));
});
