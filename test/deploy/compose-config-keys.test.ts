// The compose file and the node's configuration loader must not drift apart: every key the compose
// file sets is one the node knows and uses, each service's environment loads into a valid config
// for that very node, and the ports, directories and probe paths in the compose file, the
// Dockerfile and prometheus.yml are the ones that config makes the node use.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadConfig, requireSelf } from '../../src/server/config.js';
import { findKeySpec } from '../../src/server/config-keys.js';
import { dockerfileInstructions, ENV_PREFIX, readYaml, resolvedCompose, SCM_SERVICES } from './deploy-files.js';

function ozoneEnv(environment: Record<string, string | null> | undefined): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(environment ?? {})) {
    if (value !== null) env[name] = value;
  }
  return env;
}

test('every OZONE-SITE.XML_ key in docker-compose.yml is a known, used configuration key', () => {
  const compose = resolvedCompose();
  for (const name of SCM_SERVICES) {
    for (const variable of Object.keys(compose.services[name]?.environment ?? {})) {
      if (!variable.startsWith(ENV_PREFIX)) continue;
      const key = variable.slice(ENV_PREFIX.length);
      const spec = findKeySpec(key);
      assert.ok(spec, `${name}: ${key} is not a configuration key the node accepts`);
      assert.ok(spec.used, `${name}: ${key} is accepted but has no effect on this node`);
    }
  }
});

test("each SCM service's environment loads into the config of that node, matching volumes, ports and probes", () => {
  const compose = resolvedCompose();
  const prometheus = readYaml('deploy/prometheus/prometheus.yml') as { scrape_configs: { static_configs: { targets: string[] }[] }[] };
  const scrapeTargets = prometheus.scrape_configs.flatMap((j) => j.static_configs.flatMap((s) => s.targets)).sort();
  const exposed = dockerfileInstructions()
    .filter(([k]) => k === 'EXPOSE')
    .flatMap(([, v]) => v.split(/\s+/).map(Number))
    .sort();

  for (const name of SCM_SERVICES) {
    const service = compose.services[name];
    assert.ok(service);
    const env = ozoneEnv(service.environment);
    const config = loadConfig({ env });
    const self = requireSelf(config);
    assert.equal(config.nodeId, name);
    assert.equal(self.host, name, `${name} must be addressed by its compose service name`);
    assert.deepEqual(config.peers.map((p) => p.nodeId), [...SCM_SERVICES]);
    assert.deepEqual(config.peers.map((p) => p.host), [...SCM_SERVICES]);
    assert.equal(config.primordialNodeId, 'scm1');

    // Directories are exactly the mounted named volumes.
    const mounts = (service.volumes ?? []).map((v) => v.split(':')[1]);
    assert.ok(mounts.includes(config.dbDir), `${name}: scm.db dir ${config.dbDir} is not a mounted volume`);
    assert.ok(mounts.includes(config.ratisDir), `${name}: Raft dir ${config.ratisDir} is not a mounted volume`);
    const marker = `${config.dbDir}/scm/current/VERSION`;
    assert.equal(env.ENSURE_SCM_INITIALIZED ?? env.ENSURE_SCM_BOOTSTRAPPED, marker);
    assert.equal(env.ENSURE_SCM_INITIALIZED !== undefined, name === config.primordialNodeId);

    // Ports: what the compose file publishes and probes, the Dockerfile exposes, Prometheus scrapes.
    const nodePorts = [self.clientPort, self.httpPort, self.ratisPort, self.grpcPort].sort();
    assert.deepEqual(exposed, nodePorts, 'Dockerfile EXPOSE differs from the configured ports');
    for (const port of service.ports ?? []) {
      assert.ok(nodePorts.includes(port.target), `${name} publishes container port ${port.target}, which the node does not listen on`);
    }
    assert.ok((service.ports ?? []).some((p) => p.target === self.clientPort), `${name} does not publish its client port`);
    assert.ok((service.ports ?? []).some((p) => p.target === self.httpPort), `${name} does not publish its HTTP port`);
    assert.equal(self.httpHost, '0.0.0.0', 'the HTTP server must listen beyond localhost for Prometheus');
    assert.ok((service.healthcheck?.test ?? []).join(' ').includes(`127.0.0.1:${self.httpPort}/healthz`));
    assert.deepEqual(scrapeTargets, config.peers.map((p) => `${p.host}:${p.httpPort}`).sort());
  }
});

test('the drift check has teeth: a wrong key or value in the compose environment is rejected', () => {
  const env = ozoneEnv(resolvedCompose().services.scm2?.environment);
  assert.throws(() => loadConfig({ env: { ...env, [`${ENV_PREFIX}ozone.scm.ratis.prot`]: '9894' } }), /ozone\.scm\.ratis\.prot/);
  assert.throws(() => loadConfig({ env: { ...env, [`${ENV_PREFIX}ozone.scm.client.port`]: 'ninety' } }), /ozone\.scm\.client\.port/);
  assert.throws(() => loadConfig({ env: { ...env, [`${ENV_PREFIX}ozone.scm.node.id`]: 'scm9' } }), /scm9/);
});
