import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  assertSameCluster,
  createVersionInfo,
  raftGroupIdOf,
  readVersionFile,
  readVersionFileIfExists,
  versionFilePath,
  VersionFileCorruptError,
  VersionFileMissingError,
  writeVersionFile,
} from '../../src/server/version-file.js';
import { formatProperties, parseProperties } from '../../src/java-properties.js';

const root = mkdtempSync(join(tmpdir(), 'scm-version-test-'));
after(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const freshDir = (): string => join(root, `db${n++}`);

const SAMPLE = `#Fri Feb 13 10:58:02 PDT 2020
nodeType=SCM
scmUuid=fa1376f0-23ad-4cda-93d6-0c9fd79c7ae3
clusterID=CID-2a3f36e8-506f-40eb-986e-bb79d188fd55
cTime=1771013425196
layoutVersion=0
`;

test('write then read round-trips, under scm/current/VERSION, with no tmp file left', async () => {
  const dbDir = freshDir();
  const info = createVersionInfo({ cTime: 1771013425196 });
  const path = await writeVersionFile(dbDir, info);
  assert.equal(path, join(dbDir, 'scm', 'current', 'VERSION'));
  assert.ok(!existsSync(`${path}.tmp`));
  const text = readFileSync(path, 'utf8');
  assert.match(text, /^#\w{3} \w{3} \d\d \d\d:\d\d:\d\d UTC \d{4}\nnodeType=SCM\nscmUuid=[0-9a-f-]{36}\nclusterID=CID-[0-9a-f-]{36}\ncTime=1771013425196\nlayoutVersion=0\n$/);
  const read = readVersionFile(dbDir);
  assert.deepEqual({ ...read, extra: [...read.extra] }, { ...info, extra: [] });
});

test("reads Ozone's own VERSION file and keeps unknown properties on rewrite", async () => {
  const dbDir = freshDir();
  mkdirSync(join(dbDir, 'scm', 'current'), { recursive: true });
  writeFileSync(versionFilePath(dbDir), `${SAMPLE}primaryScmNodeId=fa1376f0-23ad-4cda-93d6-0c9fd79c7ae3\n`);
  const info = readVersionFile(dbDir);
  assert.equal(info.clusterId, 'CID-2a3f36e8-506f-40eb-986e-bb79d188fd55');
  assert.equal(info.scmUuid, 'fa1376f0-23ad-4cda-93d6-0c9fd79c7ae3');
  assert.equal(info.cTime, 1771013425196);
  await writeVersionFile(dbDir, info);
  assert.equal(readVersionFile(dbDir).extra.get('primaryScmNodeId'), 'fa1376f0-23ad-4cda-93d6-0c9fd79c7ae3');
  assert.equal(raftGroupIdOf(info.clusterId), '2a3f36e8-506f-40eb-986e-bb79d188fd55');
});

test('a missing VERSION is its own error telling the operator to init or bootstrap', () => {
  const dbDir = freshDir();
  assert.throws(() => readVersionFile(dbDir), (err: Error) => err instanceof VersionFileMissingError && /scm init/.test(err.message));
  assert.equal(readVersionFileIfExists(dbDir), null);
});

test('corrupt VERSION files are rejected with the reason', () => {
  const cases: [string, RegExp][] = [
    [SAMPLE.replace('nodeType=SCM', 'nodeType=OM'), /nodeType is "OM", expected SCM/],
    [SAMPLE.replace(/clusterID=.*\n/, ''), /missing clusterID/],
    [SAMPLE.replace('clusterID=CID-', 'clusterID=XYZ-'), /clusterID "XYZ-.*" is not CID-<uuid>/],
    [SAMPLE.replace(/scmUuid=.*\n/, 'scmUuid=not-a-uuid\n'), /scmUuid "not-a-uuid" is not a UUID/],
    [SAMPLE.replace('cTime=1771013425196', 'cTime=yesterday'), /cTime="yesterday" is not a non-negative integer/],
    [SAMPLE.replace('layoutVersion=0', 'layoutVersion=7'), /layoutVersion 7 is newer than this software understands/],
    [SAMPLE.replace('layoutVersion=0', 'layoutVersion=\\u12'), /malformed \\u escape/],
    ['', /missing nodeType/],
  ];
  for (const [text, message] of cases) {
    const dbDir = freshDir();
    mkdirSync(join(dbDir, 'scm', 'current'), { recursive: true });
    writeFileSync(versionFilePath(dbDir), text);
    assert.throws(() => readVersionFile(dbDir), (err: Error) => err instanceof VersionFileCorruptError && message.test(err.message), message.source);
  }
});

test('a foreign clusterID is refused', () => {
  const local = createVersionInfo();
  assert.doesNotThrow(() => assertSameCluster(local, local.clusterId, 'the leader'));
  assert.throws(() => assertSameCluster(local, 'CID-00000000-0000-0000-0000-000000000000', 'the leader scm1'), /clusterID mismatch: .* the leader scm1 has CID-0000/);
});

test('Java properties: escapes, separators, continuations and comments round-trip', () => {
  const entries: [string, string][] = [
    ['plain', 'value'],
    ['key with spaces', ' leading space'],
    ['sep=:#!', 'a=b:c#d!e'],
    ['unicode', 'héllo ☃'],
    ['controls', 'tab\tnewline\nreturn\r'],
    ['backslash', 'C:\\path\\'],
    ['empty', ''],
  ];
  const text = formatProperties(entries, new Date(Date.UTC(2020, 1, 13, 10, 58, 2)));
  assert.ok(text.startsWith('#Thu Feb 13 10:58:02 UTC 2020\n'));
  assert.deepEqual([...parseProperties(text)], entries);
  const javaStyle = parseProperties('# comment\n! also comment\n  a : 1\nb   2\nc=one \\\n    two\nd\n');
  assert.deepEqual([...javaStyle], [
    ['a', '1'],
    ['b', '2'],
    ['c', 'one two'],
    ['d', ''],
  ]);
});
