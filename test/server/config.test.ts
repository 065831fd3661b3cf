import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig, requireSelf, KNOWN_CONFIG_KEYS } from '../../src/server/config.js';
import { parseHadoopXml } from '../../src/server/hadoop-xml.js';
import { findVariableReference, parseDurationMs, parseEnvironmentReference, parseSizeBytes } from '../../src/server/config-values.js';

const dir = mkdtempSync(join(tmpdir(), 'scm-config-test-'));
after(() => rmSync(dir, { recursive: true, force: true }));

let fileCounter = 0;
function siteXml(body: string): string {
  const path = join(dir, `ozone-site-${fileCounter++}.xml`);
  writeFileSync(path, `<?xml version="1.0" encoding="UTF-8"?>\n<?xml-stylesheet type="text/xsl" href="configuration.xsl"?>\n<configuration>\n${body}\n</configuration>\n`);
  return path;
}
const prop = (name: string, value: string): string => `  <property><name>${name}</name><value>${value}</value></property>`;

const HA = {
  'ozone.scm.service.ids': 'scmservice',
  'ozone.scm.nodes.scmservice': 'scm1,scm2,scm3',
  'ozone.scm.address.scmservice.scm1': '127.0.0.1',
  'ozone.scm.address.scmservice.scm2': '127.0.0.1',
  'ozone.scm.address.scmservice.scm3': '127.0.0.1',
  'ozone.scm.client.port.scmservice.scm2': '9960',
  'ozone.scm.ratis.port.scmservice.scm2': '9994',
  'ozone.scm.grpc.port.scmservice.scm2': '9995',
  'ozone.scm.http-address.scmservice.scm2': '0.0.0.0:9976',
  'ozone.scm.client.port.scmservice.scm3': '10060',
  'ozone.scm.ratis.port.scmservice.scm3': '10094',
  'ozone.scm.grpc.port.scmservice.scm3': '10095',
  'ozone.scm.http-address.scmservice.scm3': '0.0.0.0:10076',
  'ozone.metadata.dirs': '/data/meta',
};

test('defaults: single node, Ozone ports, metadata dir fallback, SCMHAConfiguration timings', () => {
  const config = loadConfig({ overrides: { 'ozone.metadata.dirs': '/var/lib/scm' } });
  assert.equal(config.serviceId, 'scmservice');
  assert.equal(config.nodeId, 'scm1');
  assert.deepEqual(config.peers, [
    { nodeId: 'scm1', host: '127.0.0.1', clientPort: 9860, ratisPort: 9894, grpcPort: 9895, httpHost: '0.0.0.0', httpPort: 9876, clientAddress: '127.0.0.1:9860', ratisAddress: '127.0.0.1:9894', grpcAddress: '127.0.0.1:9895', httpsHost: '0.0.0.0', httpsPort: 9877 },
  ]);
  assert.equal(config.dbDir, '/var/lib/scm');
  assert.equal(config.ratisDir, '/var/lib/scm/scm-ha');
  assert.equal(config.raft.segmentSizeBytes, 64 * 1024 * 1024);
  assert.equal(config.raft.segmentPreallocatedSizeBytes, 4 * 1024 * 1024);
  assert.equal(config.raft.snapshotThreshold, 1000);
  assert.equal(config.raft.retryCacheTimeoutMs, 60_000);
  assert.equal(config.raft.electionTimeoutMinMs, 5000);
  assert.equal(config.raft.electionTimeoutMaxMs, 5200);
  assert.equal(config.raft.heartbeatIntervalMs, 2500);
  assert.equal(config.raft.requestTimeoutMs, 30_000);
  assert.equal(config.raft.logPurgeEnabled, false);
  assert.equal(config.raft.logPurgeGap, 1_000_000);
  assert.equal(config.raft.logPurgeUptoSnapshotIndex, false);
  assert.equal(config.raft.logCorruptionPolicy, 'EXCEPTION');
  assert.equal(config.raft.logCacheBytes, 8 * 1024 * 1024);
  assert.equal(config.grpcDeadlineIntervalMs, 30 * 60_000);
});

test('the Raft log falls back to <ozone.metadata.dirs>/scm-ha (as Ozone SCM HA), never under ozone.scm.db.dirs', () => {
  const config = loadConfig({ overrides: { 'ozone.metadata.dirs': '/meta', 'ozone.scm.db.dirs': '/db' } });
  assert.equal(config.dbDir, '/db');
  assert.equal(config.ratisDir, '/meta/scm-ha');
  // Either name of the key wins over the fallback.
  assert.equal(loadConfig({ overrides: { 'ozone.metadata.dirs': '/meta', 'ozone.scm.ratis.storage.dir': '/r' } }).ratisDir, '/r');
  assert.equal(loadConfig({ overrides: { 'ozone.metadata.dirs': '/meta', 'ozone.scm.ha.ratis.storage.dir': '/r2' } }).ratisDir, '/r2');
  assert.throws(() => loadConfig({ overrides: { 'ozone.scm.db.dirs': '/db' } }), /neither ozone\.scm\.ha\.ratis\.storage\.dir \(or ozone\.scm\.ratis\.storage\.dir\) nor ozone\.metadata\.dirs is set/);
});

test('site file is read; environment beats file; overrides beat environment', () => {
  const path = siteXml(
    [
      prop('ozone.metadata.dirs', '/from/file'),
      prop('ozone.scm.ha.ratis.snapshot.threshold', '10'),
      prop('ozone.scm.ha.ratis.segment.size', '1MB'),
      prop('ozone.scm.ha.ratis.leader.election.timeout', '300ms'),
    ].join('\n'),
  );
  const config = loadConfig({
    siteXmlPath: path,
    env: { 'OZONE-SITE.XML_ozone.scm.ha.ratis.snapshot.threshold': '20', 'OZONE-SITE.XML_ozone.scm.db.dirs': '/from/env', PATH: '/usr/bin' },
    overrides: { 'ozone.scm.db.dirs': '/from/override' },
  });
  assert.equal(config.raft.snapshotThreshold, 20);
  assert.equal(config.raft.segmentSizeBytes, 1024 * 1024);
  assert.equal(config.raft.electionTimeoutMinMs, 300);
  assert.equal(config.dbDir, '/from/override');
  assert.equal(config.ratisDir, '/from/file/scm-ha');
  assert.equal(config.values.get('ozone.scm.db.dirs'), '/from/override');
});

test('three nodes on one host through suffixed keys; ozone.scm.node.id picks this node', () => {
  const config = loadConfig({ overrides: { ...HA, 'ozone.scm.node.id': 'scm2', 'ozone.scm.db.dirs.scmservice.scm2': '/data/scm2/db' } });
  assert.equal(config.nodeId, 'scm2');
  assert.deepEqual(
    config.peers.map((p) => [p.nodeId, p.clientPort, p.ratisPort, p.grpcPort, p.httpPort]),
    [
      ['scm1', 9860, 9894, 9895, 9876],
      ['scm2', 9960, 9994, 9995, 9976],
      ['scm3', 10060, 10094, 10095, 10076],
    ],
  );
  assert.equal(requireSelf(config).clientAddress, '127.0.0.1:9960');
  assert.equal(config.dbDir, '/data/scm2/db');
});

test('several nodes on one host without ozone.scm.node.id: nodeId is null and requireSelf says what to set', () => {
  const config = loadConfig({ overrides: HA });
  assert.equal(config.nodeId, null);
  assert.throws(() => requireSelf(config), /set ozone\.scm\.node\.id/);
});

test('Hadoop XML: entities, character references, CDATA, comments; later definitions win', () => {
  const properties = parseHadoopXml(
    'x.xml',
    `<?xml version="1.0"?>
<!DOCTYPE configuration>
<configuration>
  <!-- a comment with <property> inside -->
  <property>
    <name> a.b </name>
    <value>x &lt;&amp;&gt; &quot;&apos; &#65;&#x42;</value>
    <description>ignored</description>
  </property>
  <property><name>c</name><value><![CDATA[<raw & text>]]></value></property>
  <property><name>c</name><value>second</value></property>
  <property><name>novalue</name></property>
  <property><name>empty</name><value/></property>
</configuration>`,
  );
  assert.deepEqual(
    properties.map((p) => [p.name, p.value]),
    [
      ['a.b', 'x <&> "\' AB'],
      ['c', '<raw & text>'],
      ['c', 'second'],
      ['empty', ''],
    ],
  );
});

test('a malformed site file is an error naming the file and the line', () => {
  const unclosed = siteXml(`${prop('a', '1')}\n  <property><name>b</name><value>2</value>\n`);
  assert.throws(() => loadConfig({ siteXmlPath: unclosed }), (err: Error) => {
    assert.match(err.message, new RegExp(`^${unclosed.replace(/[.]/g, '\\.')}:\\d+: end tag </configuration> does not match <property> opened on line 5`));
    return true;
  });
  const entity = siteXml(prop('a', 'x &bogus; y'));
  assert.throws(() => loadConfig({ siteXmlPath: entity }), /ozone-site-\d+\.xml:4: unknown entity "&bogus;"/);
  const root = join(dir, 'wrong-root.xml');
  writeFileSync(root, '<conf>\n</conf>\n');
  assert.throws(() => loadConfig({ siteXmlPath: root }), /wrong-root\.xml:1: root element is <conf>, expected <configuration>/);
  assert.throws(() => loadConfig({ siteXmlPath: join(dir, 'missing.xml') }), /cannot read configuration file .*missing\.xml/);
  const noName = siteXml('  <property><value>1</value></property>');
  assert.throws(() => loadConfig({ siteXmlPath: noName }), /:4: <property> has no <name>/);
});

test('every error path names the key', () => {
  const base = { 'ozone.metadata.dirs': '/m' };
  const cases: [Record<string, string>, RegExp][] = [
    [{ 'ozone.scm.no.such.key': '1' }, /unknown configuration key ozone\.scm\.no\.such\.key \(set in override\)/],
    [{ 'ozone.scm.client.port': '70000' }, /invalid value "70000" for configuration key ozone\.scm\.client\.port: expected a port number from 1 to 65535/],
    [{ 'ozone.scm.client.port': 'abc' }, /ozone\.scm\.client\.port/],
    [{ 'ozone.scm.ha.ratis.segment.size': '64XB' }, /ozone\.scm\.ha\.ratis\.segment\.size: unknown size unit "XB"/],
    [{ 'ozone.scm.ha.ratis.leader.election.timeout': '5 parsecs' }, /ozone\.scm\.ha\.ratis\.leader\.election\.timeout/],
    [{ 'ozone.scm.ha.ratis.leader.election.timeout': '5y' }, /unknown time unit "y"/],
    [{ 'ozone.scm.ha.ratis.log.purge.enabled': 'yes' }, /ozone\.scm\.ha\.ratis\.log\.purge\.enabled: expected true or false/],
    [{ 'ozone.scm.ha.ratis.log.corruption.policy': 'IGNORE' }, /ozone\.scm\.ha\.ratis\.log\.corruption\.policy: expected one of EXCEPTION, WARN_AND_RETURN/],
    [{ 'ozone.scm.ha.ratis.snapshot.threshold': '-1' }, /ozone\.scm\.ha\.ratis\.snapshot\.threshold: expected a whole number from 1/],
    [{ 'ozone.scm.http-address': 'localhost' }, /ozone\.scm\.http-address: expected host:port \(the port is missing\)/],
    [{ 'ozone.scm.http-address': 'bad host:80' }, /ozone\.scm\.http-address: expected a host name or IP address/],
    [{ 'ozone.scm.ha.ratis.request.timeout': '500ms' }, /ozone\.scm\.ha\.ratis\.request\.timeout: the Raft request timeout must exceed 1000ms/],
    // Past Node's timer range (2^31 - 1 ms) the write timer would fire after 1 ms, every time.
    [{ 'ozone.scm.ha.dbtransactionbuffer.flush.interval': '30d' }, /ozone\.scm\.ha\.dbtransactionbuffer\.flush\.interval: must be at most 1d/],
    [{ 'ozone.scm.ha.ratis.request.timeout': '5s', 'ozone.scm.ha.ratis.server.request.timeout': '6s' }, /ozone\.scm\.ha\.ratis\.request\.timeout and ozone\.scm\.ha\.ratis\.server\.request\.timeout are aliases/],
    [{ 'ozone.scm.service.ids': 'svc' }, /configuration key ozone\.scm\.nodes\.svc must be set/],
    [{ 'ozone.scm.service.ids': 'svc', 'ozone.scm.nodes.svc': 'a,b' , 'ozone.scm.address.svc.a': 'h1' }, /configuration key ozone\.scm\.address\.svc\.b must be set/],
    [{ 'ozone.scm.service.ids': 'svc', 'ozone.scm.nodes.svc': 'a,a' }, /ozone\.scm\.nodes\.svc lists node a twice/],
    [{ 'ozone.scm.service.ids': 'svc1,svc2' }, /set ozone\.scm\.default\.service\.id/],
    [{ ...HA, 'ozone.scm.node.id': 'scm9' }, /ozone\.scm\.node\.id=scm9 is not one of the nodes/],
    [{ ...HA, 'ozone.scm.client.port.scmservice.scm2': '9860' }, /port collision on 127\.0\.0\.1:9860: ozone\.scm\.client\.port of node scm1 and ozone\.scm\.client\.port of node scm2/],
    [{ 'ozone.scm.db.dirs': '/a,/b' }, /ozone\.scm\.db\.dirs: exactly one directory is supported/],
    [{ 'ozone.scm.client.port.scmservice.scm1.extra': '1' }, /unknown configuration key ozone\.scm\.client\.port\.scmservice\.scm1\.extra/],
  ];
  for (const [overrides, message] of cases) {
    assert.throws(() => loadConfig({ overrides: { ...base, ...overrides } }), message, JSON.stringify(overrides));
  }
  assert.throws(() => loadConfig({}), /neither ozone\.scm\.db\.dirs nor ozone\.metadata\.dirs is set/);
  assert.throws(
    () => loadConfig({ env: { 'OZONE-SITE.XML_ozone.scm.grpc.port': '0', 'OZONE-SITE.XML_ozone.metadata.dirs': '/m' } }),
    /ozone\.scm\.grpc\.port: expected a port number from 1 to 65535 \(set in environment variable OZONE-SITE\.XML_ozone\.scm\.grpc\.port\)/,
  );
  const badFile = siteXml(`${prop('ozone.metadata.dirs', '/m')}\n${prop('ozone.scm.ratis.port', 'x')}`);
  assert.throws(() => loadConfig({ siteXmlPath: badFile }), /ozone\.scm\.ratis\.port: .*\(set in .*ozone-site-\d+\.xml:5\)/);
});

test('other namespaces are ignored; accepted Ozone keys load', () => {
  const config = loadConfig({
    overrides: {
      'ozone.metadata.dirs': '/m',
      'ozone.om.address': 'om:9862',
      'hdds.datanode.dir': '/data/hdds',
      'ozone.scm.names': 'scm',
      'ozone.scm.datanode.id.dir': '/data',
      'ozone.scm.container.size': '1GB',
      'ozone.scm.pipeline.owner.container.count': '1',
    },
  });
  assert.equal(config.dbDir, '/m');
});

test('KNOWN_CONFIG_KEYS patterns accept the suffixed forms of per-node keys only', () => {
  const match = (key: string): boolean => KNOWN_CONFIG_KEYS.some((spec) => spec.pattern.test(key));
  assert.ok(match('ozone.scm.client.port'));
  assert.ok(match('ozone.scm.client.port.svc.scm1'));
  assert.ok(match('ozone.scm.nodes.svc'));
  assert.ok(match('ozone.scm.address.svc.scm1'));
  assert.ok(match('ozone.scm.ha.ratis.server.retry.cache.timeout'));
  assert.ok(!match('ozone.scm.ha.ratis.segment.size.svc.scm1'));
  assert.ok(!match('ozone.scm.address'));
});

test('Hadoop units', () => {
  assert.equal(parseDurationMs('k', '100ms', 'ms'), 100);
  assert.equal(parseDurationMs('k', '5s', 'ms'), 5000);
  assert.equal(parseDurationMs('k', '30m', 'ms'), 1_800_000);
  assert.equal(parseDurationMs('k', '2h', 'ms'), 7_200_000);
  assert.equal(parseDurationMs('k', '1d', 'ms'), 86_400_000);
  assert.equal(parseDurationMs('k', '250', 'ms'), 250);
  assert.equal(parseDurationMs('k', '3', 's'), 3000);
  assert.equal(parseDurationMs('k', '5000us', 'ms'), 5);
  assert.throws(() => parseDurationMs('k', '1500us', 'ms'), /below one millisecond/);
  assert.equal(parseSizeBytes('k', '64MB'), 67_108_864);
  assert.equal(parseSizeBytes('k', '4kb'), 4096);
  assert.equal(parseSizeBytes('k', '1.5GB'), 1_610_612_736);
  assert.equal(parseSizeBytes('k', '1024'), 1024);
  assert.throws(() => parseSizeBytes('k', '-1MB'), /invalid value "-1MB" for configuration key k/);
});

test('${key} references expand in site-file values, from the effective value of the other key', () => {
  const path = siteXml(
    [
      prop('ozone.metadata.dirs', '/from/file'),
      prop('ozone.scm.db.dirs', '${ozone.metadata.dirs}/db'),
      prop('ozone.scm.ha.ratis.storage.dir', '${ozone.scm.db.dirs}/../ratis'),
      prop('ozone.scm.ha.ratis.snapshot.threshold', '${scm.test.threshold}'),
      prop('scm.test.threshold', '25'),
    ].join('\n'),
  );
  const config = loadConfig({ siteXmlPath: path });
  assert.equal(config.dbDir, '/from/file/db');
  // Recursive: the Raft dir refers to db.dirs, which refers to metadata.dirs.
  assert.equal(config.ratisDir, '/from/file/ratis');
  // A key outside ozone.scm. may hold a shared value.
  assert.equal(config.raft.snapshotThreshold, 25);
  assert.equal(config.values.get('ozone.scm.db.dirs'), '/from/file/db');
  // The reference reads the winning value: the environment overrides the file's metadata dir, and the
  // file's db.dirs follows it.
  const fromEnv = loadConfig({ siteXmlPath: path, env: { 'OZONE-SITE.XML_ozone.metadata.dirs': '/from/env' } });
  assert.equal(fromEnv.dbDir, '/from/env/db');
});

test('${key} and ${env.NAME} references expand in OZONE-SITE.XML_ environment values', () => {
  const config = loadConfig({
    env: {
      'OZONE-SITE.XML_ozone.metadata.dirs': '${env.SCM_DATA}/meta',
      'OZONE-SITE.XML_ozone.scm.db.dirs': '${ozone.metadata.dirs}/db',
      'OZONE-SITE.XML_ozone.scm.client.port': '${env.SCM_PORT:-9999}',
      'OZONE-SITE.XML_ozone.scm.ratis.port': '${env.SCM_RATIS_PORT-9998}',
      'OZONE-SITE.XML_ozone.scm.grpc.port': '${env.EMPTY:-9997}',
      'OZONE-SITE.XML_ozone.scm.http-address': '0.0.0.0:${env.EMPTY-}9996',
      SCM_DATA: '/srv/scm',
      EMPTY: '',
    },
  });
  assert.equal(config.dbDir, '/srv/scm/meta/db');
  assert.equal(config.ratisDir, '/srv/scm/meta/scm-ha');
  const self = requireSelf(config);
  assert.equal(self.clientPort, 9999); // unset: the fallback
  assert.equal(self.ratisPort, 9998);
  assert.equal(self.grpcPort, 9997); // ":-" also replaces an empty value
  assert.equal(self.httpPort, 9996); // "-" keeps an empty value
});

test('a reference to an unset key with a default reads the default; nested names expand inside out', () => {
  const config = loadConfig({
    overrides: {
      'ozone.metadata.dirs': '/m/${ozone.scm.client.port}',
      'scm.test.which': 'scmservice.scm1',
      'ozone.scm.db.dirs.scmservice.scm1': '/db/one',
      'ozone.scm.ha.ratis.storage.dir': '${ozone.scm.db.dirs.${scm.test.which}}/ratis',
    },
  });
  assert.equal(config.ratisDir, '/db/one/ratis');
  assert.equal(config.dbDir, '/db/one');
  assert.equal(loadConfig({ overrides: { 'ozone.metadata.dirs': '/m/${ozone.scm.client.port}' } }).dbDir, '/m/9860');
});

test('init no longer sees a literal ${...}: undefined references are errors naming key, source and name', () => {
  // Hadoop would leave "${ozone.metadata.dirs}/db" as it is and init would create a directory with
  // that name; here it is an error.
  assert.throws(
    () => loadConfig({ env: { 'OZONE-SITE.XML_ozone.scm.db.dirs': '${ozone.metadata.dirs}/db' } }),
    (err: Error) => {
      assert.equal(
        err.message,
        'configuration key ozone.scm.db.dirs (set in environment variable OZONE-SITE.XML_ozone.scm.db.dirs) refers to ${ozone.metadata.dirs}, which is not set',
      );
      return true;
    },
  );
  const path = siteXml(prop('ozone.metadata.dirs', '${env.SCM_NOT_SET_ANYWHERE}/m'));
  assert.throws(
    () => loadConfig({ siteXmlPath: path, env: {} }),
    /configuration key ozone\.metadata\.dirs \(set in .*ozone-site-\d+\.xml:4\) refers to \$\{env\.SCM_NOT_SET_ANYWHERE\}, but environment variable SCM_NOT_SET_ANYWHERE is not set/,
  );
  assert.throws(
    () => loadConfig({ overrides: { 'ozone.metadata.dirs': '/tmp/${user.name}' } }),
    /refers to \$\{user\.name\}, which is not set \(Java system properties do not exist here: read the environment with \$\{env\.NAME\}\)/,
  );
  // The key that holds the bad reference is named, even when reached through another key.
  assert.throws(
    () => loadConfig({ overrides: { 'ozone.metadata.dirs': '/m', 'ozone.scm.db.dirs': '${scm.test.a}', 'scm.test.a': '${scm.test.missing}' } }),
    /configuration key scm\.test\.a \(set in override\) refers to \$\{scm\.test\.missing\}, which is not set \(needed to expand ozone\.scm\.db\.dirs\)/,
  );
});

test('reference cycles are errors that show the cycle', () => {
  assert.throws(
    () => loadConfig({ overrides: { 'ozone.metadata.dirs': '${ozone.metadata.dirs}/x' } }),
    /configuration key ozone\.metadata\.dirs \(set in override\) is part of a cycle of references: \$\{ozone\.metadata\.dirs\} -> \$\{ozone\.metadata\.dirs\}/,
  );
  assert.throws(
    () => loadConfig({ overrides: { 'ozone.metadata.dirs': '${ozone.scm.db.dirs}', 'ozone.scm.db.dirs': '${scm.test.b}', 'scm.test.b': '${ozone.metadata.dirs}' } }),
    /is part of a cycle of references: \$\{ozone\.metadata\.dirs\} -> \$\{ozone\.scm\.db\.dirs\} -> \$\{scm\.test\.b\} -> \$\{ozone\.metadata\.dirs\}|is part of a cycle of references: \$\{ozone\.scm\.db\.dirs\} -> \$\{scm\.test\.b\} -> \$\{ozone\.metadata\.dirs\} -> \$\{ozone\.scm\.db\.dirs\}/,
  );
  // Through the environment: a variable whose value refers to itself.
  assert.throws(
    () => loadConfig({ env: { 'OZONE-SITE.XML_ozone.metadata.dirs': '${env.LOOP}', LOOP: '${env.LOOP}' } }),
    /cycle of references: \$\{env\.LOOP\} -> \$\{env\.LOOP\}/,
  );
  // Runaway growth without a cycle is stopped too.
  const doubling: Record<string, string> = { 'ozone.metadata.dirs': '${scm.test.d0}', 'scm.test.d20': 'x'.repeat(64) };
  for (let i = 0; i < 20; i++) doubling[`scm.test.d${i}`] = `\${scm.test.d${i + 1}}\${scm.test.d${i + 1}}`;
  assert.throws(() => loadConfig({ overrides: doubling }), /expands to more than 65536 characters/);
});

test('values without references, other services\' keys and malformed references are left alone', () => {
  const config = loadConfig({
    overrides: {
      'ozone.metadata.dirs': '/m/$x/${}/${a b}/$',
      // Not a key this node reads: its reference is never expanded, so it is no error.
      'hadoop.tmp.dir': '/tmp/hadoop-${user.name}',
    },
  });
  assert.equal(config.dbDir, '/m/$x/${}/${a b}/$');
  assert.equal(config.values.get('hadoop.tmp.dir'), '/tmp/hadoop-${user.name}');
});

test('findVariableReference and parseEnvironmentReference follow Hadoop', () => {
  assert.deepEqual(findVariableReference('a${b}c'), { start: 1, end: 5, name: 'b' });
  assert.deepEqual(findVariableReference('${a.${b}}'), { start: 4, end: 8, name: 'b' });
  assert.deepEqual(findVariableReference('${a b}${c}'), { start: 6, end: 10, name: 'c' });
  assert.deepEqual(findVariableReference('$${c}'), { start: 1, end: 5, name: 'c' });
  assert.equal(findVariableReference('${}'), undefined);
  assert.equal(findVariableReference('${unterminated'), undefined);
  assert.equal(findVariableReference('plain $ text'), undefined);
  assert.deepEqual(parseEnvironmentReference('env.HOME'), { variable: 'HOME' });
  assert.deepEqual(parseEnvironmentReference('env.A:-x:-y'), { variable: 'A', fallback: { text: 'x:-y', whenEmpty: true } });
  assert.deepEqual(parseEnvironmentReference('env.A-B'), { variable: 'A', fallback: { text: 'B', whenEmpty: false } });
  assert.equal(parseEnvironmentReference('env.'), undefined);
  assert.equal(parseEnvironmentReference('environment.x'), undefined);
});

test('security: plaintext by default; TLS needs both Ozone switches and the three files, each named when missing', () => {
  const plain = loadConfig({ overrides: { 'ozone.metadata.dirs': '/m' } });
  assert.equal(plain.security.tls, null);
  assert.equal(plain.security.clientTls, null);
  assert.deepEqual(plain.security.administrators, []);
  assert.equal(plain.security.httpPolicy, 'HTTP_ONLY');
  assert.equal(plain.security.auditLogFile, '/m/scm-audit.log');

  const files = {
    'hdds.x509.rootca.certificate.file': '/tls/ca.crt',
    'ozone.scm.x509.certificate.file': '/tls/scm1.crt',
    'ozone.scm.x509.private.key.file': '/tls/scm1.key',
  };
  const on = { 'ozone.security.enabled': 'true', 'hdds.grpc.tls.enabled': 'true' };
  const secure = loadConfig({ overrides: { 'ozone.metadata.dirs': '/m', ...on, ...files, 'ozone.administrators': 'alice, bob ,*' } });
  assert.deepEqual(secure.security.tls, { caFile: '/tls/ca.crt', certFile: '/tls/scm1.crt', keyFile: '/tls/scm1.key' });
  assert.deepEqual(secure.security.administrators, ['alice', 'bob', '*']);

  assert.throws(() => loadConfig({ overrides: { 'ozone.metadata.dirs': '/m', 'hdds.grpc.tls.enabled': 'true', ...files } }), /hdds\.grpc\.tls\.enabled=true has no effect without ozone\.security\.enabled=true/);
  assert.throws(() => loadConfig({ overrides: { 'ozone.metadata.dirs': '/m', 'ozone.security.enabled': 'true', ...files } }), /authenticates callers only by TLS certificates; set hdds\.grpc\.tls\.enabled=true/);
  assert.throws(
    () => loadConfig({ overrides: { 'ozone.metadata.dirs': '/m', ...on, 'hdds.x509.rootca.certificate.file': '/tls/ca.crt' } }),
    /TLS is on .* but ozone\.scm\.x509\.certificate\.file, ozone\.scm\.x509\.private\.key\.file are not set \(for node scm1/,
  );
  assert.throws(() => loadConfig({ overrides: { 'ozone.metadata.dirs': '/m', 'ozone.http.policy': 'HTTPS_ONLY' } }), /ozone\.http\.policy=HTTPS_ONLY needs TLS/);
  assert.throws(() => loadConfig({ overrides: { 'ozone.metadata.dirs': '/m', 'ozone.http.policy': 'HTTPS' } }), /ozone\.http\.policy.*HTTP_ONLY, HTTPS_ONLY, HTTP_AND_HTTPS/);
  assert.throws(
    () => loadConfig({ overrides: { 'ozone.metadata.dirs': '/m', ...on, ...files, 'ozone.scm.client.x509.certificate.file': '/tls/admin.crt' } }),
    /ozone\.scm\.client\.x509\.certificate\.file and ozone\.scm\.client\.x509\.private\.key\.file go together/,
  );
});

test('security: a mistyped TLS switch is an error (hdds.grpc.tls.* is checked like ozone.scm.*), per-node certificate files win', () => {
  assert.throws(() => loadConfig({ overrides: { 'ozone.metadata.dirs': '/m', 'hdds.grpc.tls.enable': 'true' } }), /unknown configuration key hdds\.grpc\.tls\.enable \(set in override\)/);
  // Other hdds.* namespaces belong to Ozone's other services and are left alone.
  assert.doesNotThrow(() => loadConfig({ overrides: { 'ozone.metadata.dirs': '/m', 'hdds.x509.max.duration': 'P365D' } }));
  const config = loadConfig({
    overrides: {
      ...HA,
      'ozone.scm.node.id': 'scm2',
      'ozone.security.enabled': 'true',
      'hdds.grpc.tls.enabled': 'true',
      'hdds.x509.rootca.certificate.file': '/tls/ca.crt',
      'ozone.scm.x509.certificate.file.scmservice.scm2': '/tls/scm2.crt',
      'ozone.scm.x509.private.key.file.scmservice.scm2': '/tls/scm2.key',
      'ozone.scm.client.x509.certificate.file': '/tls/admin.crt',
      'ozone.scm.client.x509.private.key.file': '/tls/admin.key',
      'ozone.http.policy': 'HTTPS_ONLY',
      'ozone.scm.https-address.scmservice.scm2': '127.0.0.1:9977',
    },
  });
  assert.deepEqual(config.security.tls, { caFile: '/tls/ca.crt', certFile: '/tls/scm2.crt', keyFile: '/tls/scm2.key' });
  assert.deepEqual(config.security.clientTls, { caFile: '/tls/ca.crt', certFile: '/tls/admin.crt', keyFile: '/tls/admin.key' });
  assert.equal(config.self?.httpsPort, 9977);
  assert.equal(config.self?.httpsHost, '127.0.0.1');
});

test('ozone.scm.ha.ratis.log.purge.upto.snapshot.index: true or false, anything else named', () => {
  const base = { 'ozone.metadata.dirs': '/m' };
  assert.equal(loadConfig({ overrides: { ...base, 'ozone.scm.ha.ratis.log.purge.upto.snapshot.index': 'TRUE' } }).raft.logPurgeUptoSnapshotIndex, true);
  assert.throws(() => loadConfig({ overrides: { ...base, 'ozone.scm.ha.ratis.log.purge.upto.snapshot.index': 'yes' } }), /ozone\.scm\.ha\.ratis\.log\.purge\.upto\.snapshot\.index/);
});

test('ozone.scm.ha.raft.server.log.segment.cache.size.max: a size (0 allowed), anything else named', () => {
  const base = { 'ozone.metadata.dirs': '/m' };
  const key = 'ozone.scm.ha.raft.server.log.segment.cache.size.max';
  assert.equal(loadConfig({ overrides: { ...base, [key]: '2MB' } }).raft.logCacheBytes, 2 * 1024 * 1024);
  assert.equal(loadConfig({ overrides: { ...base, [key]: '0' } }).raft.logCacheBytes, 0);
  assert.throws(() => loadConfig({ overrides: { ...base, [key]: 'lots' } }), /ozone\.scm\.ha\.raft\.server\.log\.segment\.cache\.size\.max/);
});

test('ozone.scm.client.request.buffer.size: a size, 64MB by default, at least the worst single call (8MB + 80KB), anything else named where it was set', () => {
  const base = { 'ozone.metadata.dirs': '/m' };
  const key = 'ozone.scm.client.request.buffer.size';
  const min = 8 * 1024 * 1024 + 80 * 1024;
  assert.equal(loadConfig({ overrides: base }).clientRequestBufferBytes, 64 * 1024 * 1024);
  assert.equal(loadConfig({ overrides: { ...base, [key]: '16MB' } }).clientRequestBufferBytes, 16 * 1024 * 1024);
  assert.equal(loadConfig({ overrides: { ...base, [key]: String(min) } }).clientRequestBufferBytes, min);
  assert.throws(
    () => loadConfig({ overrides: { ...base, [key]: '8MB' } }),
    new RegExp(
      `invalid value "8MB" for configuration key ozone\\.scm\\.client\\.request\\.buffer\\.size: must be at least ${min} bytes \\(8MB \\+ 80KB: a compressed request of the largest size, 4MB, what it inflates to, as much again, and its inflater, 80KB, are held together\\), so that the largest call always fits \\(set in override\\)$`,
    ),
  );
  assert.throws(() => loadConfig({ overrides: { ...base, [key]: String(min - 1) } }), /invalid value "8470527" .* \(set in override\)$/);
  // As other value errors: the value as written, and where (not the parsed bytes).
  assert.throws(() => loadConfig({ overrides: { ...base, [key]: '1MB' } }), /invalid value "1MB" .* \(set in override\)$/);
  assert.throws(() => loadConfig({ overrides: { ...base, [key]: 'lots' } }), /ozone\.scm\.client\.request\.buffer\.size/);
});

test('ozone.scm.ha.ratis.log.appender.queue.byte-limit: a size, 32MB by default, at least 64KB (it caps every Raft message, and a quarter of it every entry)', () => {
  const base = { 'ozone.metadata.dirs': '/m' };
  const key = 'ozone.scm.ha.ratis.log.appender.queue.byte-limit';
  assert.equal(loadConfig({ overrides: base }).raft.appenderQueueByteLimitBytes, 32 * 1024 * 1024);
  assert.equal(loadConfig({ overrides: { ...base, [key]: '64KB' } }).raft.appenderQueueByteLimitBytes, 64 * 1024);
  assert.throws(
    () => loadConfig({ overrides: { ...base, [key]: '65535' } }),
    /^ConfigValueError: invalid value "65535" for configuration key ozone\.scm\.ha\.ratis\.log\.appender\.queue\.byte-limit: must be at least 65536 bytes \(64KB\): it caps every Raft message a peer accepts, and one entry may hold a quarter of it \(set in override\)$/,
  );
  assert.throws(() => loadConfig({ overrides: { ...base, [key]: 'lots' } }), /ozone\.scm\.ha\.ratis\.log\.appender\.queue\.byte-limit/);
});

test('ozone.scm.client.max.connections and ozone.scm.peer.max.connections: counts, 1024 and 128 by default, 0 for no limit, anything else named', () => {
  const base = { 'ozone.metadata.dirs': '/m' };
  const keys = [
    ['ozone.scm.client.max.connections', 'clientMaxConnections', 1024],
    ['ozone.scm.peer.max.connections', 'peerMaxConnections', 128],
  ] as const;
  for (const [key, field, byDefault] of keys) {
    assert.equal(loadConfig({ overrides: base })[field], byDefault, key);
    assert.equal(loadConfig({ overrides: { ...base, [key]: '20000' } })[field], 20_000, key);
    assert.equal(loadConfig({ overrides: { ...base, [key]: '0' } })[field], 0, key);
    for (const bad of ['-1', 'many', '1.5']) {
      assert.throws(() => loadConfig({ overrides: { ...base, [key]: bad } }), new RegExp(`${key.replaceAll('.', '\\.')}.*\\(set in override\\)`), `${key}=${bad}`);
    }
  }
});

test('ozone.scm.peer.max.connections: 1 to 31 would let one address (a group on one machine) be refused, and are refused, naming the key', () => {
  const base = { 'ozone.metadata.dirs': '/m' };
  for (const small of ['1', '4', '31']) {
    assert.throws(() => loadConfig({ overrides: { ...base, 'ozone.scm.peer.max.connections': small } }), new RegExp(`invalid value "${small}" for configuration key ozone\\.scm\\.peer\\.max\\.connections: must be 0 \\(no limit\\) or at least 32.*\\(set in override\\)`));
  }
  assert.equal(loadConfig({ overrides: { ...base, 'ozone.scm.peer.max.connections': '32' } }).peerMaxConnections, 32);
});

test('ozone.scm.client.request.read.timeout: a duration, 10s by default, 0 for none, anything else named', () => {
  const base = { 'ozone.metadata.dirs': '/m' };
  const key = 'ozone.scm.client.request.read.timeout';
  assert.equal(loadConfig({ overrides: base }).clientRequestReadTimeoutMs, 10_000);
  assert.equal(loadConfig({ overrides: { ...base, [key]: '30s' } }).clientRequestReadTimeoutMs, 30_000);
  assert.equal(loadConfig({ overrides: { ...base, [key]: '500ms' } }).clientRequestReadTimeoutMs, 500);
  assert.equal(loadConfig({ overrides: { ...base, [key]: '0' } }).clientRequestReadTimeoutMs, 0);
  assert.throws(() => loadConfig({ overrides: { ...base, [key]: 'soon' } }), /ozone\.scm\.client\.request\.read\.timeout.*\(set in override\)/);
});
