import { test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { connect } from 'node:net';
import { NodeMetrics } from '../../src/metrics/node-metrics.js';
import { MAX_WAITING_REQUESTS, startMetricsHttpServer, type HttpRefusal, type NodeStatus, type Readiness } from '../../src/metrics/http-server.js';
import { assessReadiness } from '../../src/metrics/readiness.js';
import { promtoolCheck } from './fixtures.js';

function sampleStatus(overrides: Partial<NodeStatus> = {}): NodeStatus {
  return {
    nodeId: 'scm1',
    clusterId: 'CID-7b0c2a9e-0000-4000-8000-000000000001',
    role: 'follower',
    term: 4,
    leaderId: 'scm2',
    indexes: { lastLog: 120, commit: 118, applied: 117, snapshot: 100 },
    peers: [
      { id: 'scm1', address: 'scm1:9894', voter: true, matchIndex: null, lastContactSeconds: null, reachable: null },
      { id: 'scm2', address: 'scm2:9894', voter: true, matchIndex: null, lastContactSeconds: null, reachable: null },
      { id: 'scm3', address: 'scm3:9894', voter: true, matchIndex: null, lastContactSeconds: null, reachable: null },
    ],
    consistency: { index: 110, state: 'MATCH', consistent: true, mismatched: [], checkedAt: '2026-12-02T19:00:00.000Z' },
    removedFromGroup: null,
    ...overrides,
  };
}

async function withServer(
  readiness: () => Readiness,
  body: (get: (path: string, method?: string) => Promise<{ status: number; type: string; text: string; allow?: string }>) => Promise<void>,
  status: () => NodeStatus = () => sampleStatus(),
): Promise<void> {
  const metrics = new NodeMetrics({ nodeId: 'scm1', peers: ['scm2', 'scm3'] });
  metrics.setTerm(4);
  const server = await startMetricsHttpServer({ host: '127.0.0.1', port: 0, metrics, status, readiness });
  assert.ok(server.port > 0);
  const get = (path: string, method = 'GET') =>
    new Promise<{ status: number; type: string; text: string; allow?: string }>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port: server.port, path, method }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const result = { status: res.statusCode ?? 0, type: String(res.headers['content-type']), text: Buffer.concat(chunks).toString('utf8') };
          resolve(res.headers.allow === undefined ? result : { ...result, allow: res.headers.allow });
        });
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end();
    });
  try {
    await body(get);
  } finally {
    await server.close();
  }
}

test('/prom and /metrics serve the Prometheus text format that promtool accepts', async () => {
  await withServer(() => ({ ready: true, reason: 'ok' }), async (get) => {
    for (const path of ['/prom', '/metrics']) {
      const res = await get(path);
      assert.equal(res.status, 200);
      assert.equal(res.type, 'text/plain; version=0.0.4; charset=utf-8');
      assert.ok(res.text.includes('scm_raft_term{scm_node_id="scm1"} 4'), `${path} lacks the term`);
      assert.deepEqual(promtoolCheck(res.text), { status: 0, output: '' });
    }
  });
});

test('/healthz is 200, /readyz follows the readiness callback with its reason', async () => {
  let readiness: Readiness = { ready: true, reason: 'follower of scm2' };
  await withServer(() => readiness, async (get) => {
    assert.equal((await get('/healthz')).status, 200);
    const ready = await get('/readyz');
    assert.equal(ready.status, 200);
    assert.match(ready.text, /ready: follower of scm2/);
    readiness = { ready: false, reason: 'no known leader in term 5' };
    const notReady = await get('/readyz');
    assert.equal(notReady.status, 503);
    assert.match(notReady.text, /not ready: no known leader in term 5/);
  });
});

test('/status returns the node status as JSON', async () => {
  await withServer(() => ({ ready: true, reason: '' }), async (get) => {
    const res = await get('/status?pretty');
    assert.equal(res.status, 200);
    assert.equal(res.type, 'application/json; charset=utf-8');
    // The role as the CLI names it (GetScmRoles), not as the metrics label it.
    assert.deepEqual(JSON.parse(res.text), { ...sampleStatus(), role: 'FOLLOWER' });
  });
});

test('unknown paths are 404, non-GET methods are 405 with Allow: GET', async () => {
  await withServer(() => ({ ready: true, reason: '' }), async (get) => {
    const missing = await get('/nope');
    assert.equal(missing.status, 404);
    assert.match(missing.text, /no such endpoint \/nope/);
    const post = await get('/prom', 'POST');
    assert.equal(post.status, 405);
    assert.equal(post.allow, 'GET');
    assert.equal((await get('/status', 'DELETE')).status, 405);
  });
});

test('a failing status callback gives 500 with the error, and the server keeps serving', async () => {
  await withServer(
    () => ({ ready: true, reason: '' }),
    async (get) => {
      const res = await get('/status');
      assert.equal(res.status, 500);
      assert.match(res.text, /raft core not started/);
      assert.equal((await get('/healthz')).status, 200);
    },
    () => {
      throw new Error('raft core not started');
    },
  );
});

test('startMetricsHttpServer rejects a bad port and reports a port in use', async () => {
  const metrics = new NodeMetrics({ nodeId: 'p1' });
  const base = { host: '127.0.0.1', metrics, status: () => sampleStatus(), readiness: () => ({ ready: true, reason: '' }) };
  await assert.rejects(startMetricsHttpServer({ ...base, port: 70000 }), /invalid HTTP port 70000/);
  const first = await startMetricsHttpServer({ ...base, port: 0 });
  try {
    await assert.rejects(startMetricsHttpServer({ ...base, port: first.port }), /EADDRINUSE/);
  } finally {
    await first.close();
  }
});

test('assessReadiness: ready only as a voter with a known leader and applied close to commit', () => {
  assert.equal(assessReadiness(sampleStatus()).ready, true);
  assert.deepEqual(assessReadiness(sampleStatus({ leaderId: null })), { ready: false, reason: 'no known leader in term 4' });
  assert.match(assessReadiness(sampleStatus({ role: 'candidate', leaderId: null })).reason, /role is candidate/);
  assert.match(assessReadiness(sampleStatus({ role: 'non-voter' })).reason, /role is non-voter/);
  assert.match(assessReadiness(sampleStatus({ role: 'non-voter', leaderId: null, removedFromGroup: { index: 12 } })).reason, /removed from the group at index 12/);
  const behind = sampleStatus({ indexes: { lastLog: 5000, commit: 5000, applied: 100, snapshot: 0 } });
  assert.match(assessReadiness(behind, { maxAppliedLag: 10 }).reason, /applied index 100 is 4900 behind commit index 5000 \(limit 10\)/);
  assert.equal(assessReadiness(behind, { maxAppliedLag: 4900 }).ready, true);
  assert.equal(assessReadiness(sampleStatus({ role: 'leader', leaderId: 'scm1' })).ready, true);
  assert.match(assessReadiness(sampleStatus({ role: 'leader', leaderId: 'scm3' })).reason, /leader id is scm3/);
  assert.throws(() => assessReadiness(sampleStatus(), { maxAppliedLag: -1 }), /maxAppliedLag must be a non-negative integer/);
});

/**
 * Writes `requests` raw HTTP/1.1 requests in one write, then reads what comes back until the server
 * closes, or until an answer to each has come and 100 ms more have passed, or for 3 s at most.
 */
function pipeline(port: number, requests: string[]): Promise<{ received: string; closedByServer: boolean }> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port });
    const chunks: Buffer[] = [];
    let settled = false;
    const done = (closedByServer: boolean): void => {
      if (settled) return;
      settled = true;
      socket.destroy();
      resolve({ received: Buffer.concat(chunks).toString('latin1'), closedByServer });
    };
    socket.on('data', (c: Buffer) => {
      chunks.push(c);
      const answers = Buffer.concat(chunks).toString('latin1').match(/^HTTP\/1\.1 \d{3}/gm)?.length ?? 0;
      if (answers >= requests.length) setTimeout(() => done(false), 100).unref();
    });
    socket.on('error', reject);
    socket.on('close', () => done(true));
    socket.on('connect', () => socket.write(requests.join('')));
    setTimeout(() => done(false), 3_000).unref();
  });
}

/**
 * A client that writes `requests` in one write and reads nothing until `closed()` says the server
 * gave up on it; then it reads, and resolves when the connection ends. Rejects after 3 s.
 */
function flood(port: number, requests: string[], closed: () => boolean): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.pause();
    socket.on('error', reject);
    socket.on('connect', () => socket.write(requests.join('')));
    const started = Date.now();
    const check = setInterval(() => {
      if (!closed()) {
        if (Date.now() - started < 3_000) return;
        clearInterval(check);
        socket.destroy();
        reject(new Error(`the server kept a connection that sent ${requests.length} requests without reading an answer`));
        return;
      }
      clearInterval(check);
      // Now read: what the server sent, then its end of the connection.
      socket.resume();
      socket.on('close', () => resolve());
    }, 5);
  });
}

const GET = (path: string): string => `GET ${path} HTTP/1.1\r\nHost: scm\r\n\r\n`;

test('pipelined requests are answered one at a time, in order; past MAX_WAITING_REQUESTS waiting, the connection is closed and reported, and no more renders start', { timeout: 10_000 }, async () => {
  const metrics = new NodeMetrics({ nodeId: 'scm1', peers: ['scm2', 'scm3'] });
  let renders = 0;
  let rendering = 0;
  let most = 0;
  const render = metrics.render.bind(metrics);
  metrics.render = async () => {
    renders++;
    most = Math.max(most, ++rendering);
    try {
      await new Promise((resolve) => setTimeout(resolve, 5));
      return await render();
    } finally {
      rendering--;
    }
  };
  const refusals: HttpRefusal[] = [];
  const server = await startMetricsHttpServer({
    host: '127.0.0.1',
    port: 0,
    metrics,
    status: () => sampleStatus(),
    readiness: () => ({ ready: true, reason: 'ok' }),
    onRefused: (r) => refusals.push(r),
  });
  try {
    // Within the limit: every request answered, in the order sent, the connection kept.
    const paths = ['/healthz', '/prom', '/status', '/nope', '/readyz', '/prom'];
    const within = await pipeline(server.port, paths.map(GET));
    assert.equal(within.closedByServer, false);
    const statuses = [...within.received.matchAll(/^HTTP\/1\.1 (\d{3})/gm)].map((m) => Number(m[1]));
    assert.deepEqual(statuses, [200, 200, 200, 404, 200, 200]);
    assert.ok(within.received.indexOf('"nodeId": "scm1"') > within.received.indexOf('scm_raft_term'), 'the status answer follows the first metrics answer');
    assert.equal(renders, 2);
    assert.equal(refusals.length, 0);

    // A flood from a client that reads nothing: closed by the server at the first request past the limit.
    renders = 0;
    await flood(server.port, Array.from({ length: 5 * MAX_WAITING_REQUESTS }, () => GET('/prom')), () => refusals.length === 1);
    await new Promise((resolve) => setTimeout(resolve, 50)); // the render under way finishes
    assert.equal(renders, 1, 'only the request being answered rendered');
    assert.equal(refusals.length, 1);
    assert.equal(refusals[0]?.reason, 'pipelining');
    assert.equal(refusals[0]?.first, true);
    assert.match(refusals[0]?.details ?? '', new RegExp(`more than ${MAX_WAITING_REQUESTS} requests ahead of their answers`));
    assert.match(refusals[0]?.peer ?? '', /^127\.0\.0\.1:\d+$/);
    // A second one within the minute is reported, not as the first.
    await flood(server.port, Array.from({ length: 5 * MAX_WAITING_REQUESTS }, () => GET('/healthz')), () => refusals.length === 2);
    assert.deepEqual(refusals.map((r) => r.first), [true, false]);
    assert.equal(most, 1, 'never more than one rendering at once');

    // The boundary: one answered and MAX_WAITING_REQUESTS waiting is allowed, one more is not.
    const most17 = await pipeline(server.port, Array.from({ length: MAX_WAITING_REQUESTS + 1 }, () => GET('/healthz')));
    assert.equal(most17.closedByServer, false);
    assert.equal(most17.received.match(/^HTTP\/1\.1 200/gm)?.length, MAX_WAITING_REQUESTS + 1);
    assert.equal(refusals.length, 2);
    await flood(server.port, Array.from({ length: MAX_WAITING_REQUESTS + 2 }, () => GET('/healthz')), () => refusals.length === 3);
  } finally {
    await server.close();
  }
});

test('scrapes that arrive while the metrics are being rendered share that rendering', { timeout: 10_000 }, async () => {
  const metrics = new NodeMetrics({ nodeId: 'scm1', peers: ['scm2', 'scm3'] });
  let renders = 0;
  let release: () => void = () => undefined;
  const gate = new Promise<void>((resolve) => (release = resolve));
  const render = metrics.render.bind(metrics);
  metrics.render = async () => {
    renders++;
    await gate;
    return render();
  };
  const server = await startMetricsHttpServer({ host: '127.0.0.1', port: 0, metrics, status: () => sampleStatus(), readiness: () => ({ ready: true, reason: 'ok' }) });
  try {
    const scrapes = Array.from({ length: 8 }, () => pipeline(server.port, [GET('/prom')]));
    while (renders === 0) await new Promise((resolve) => setTimeout(resolve, 5));
    await new Promise((resolve) => setTimeout(resolve, 100)); // the other seven arrive
    release();
    const answers = await Promise.all(scrapes);
    assert.equal(renders, 1);
    for (const a of answers) assert.match(a.received, /^HTTP\/1\.1 200[\s\S]*scm_raft_term/);
    // The next scrape renders again.
    await pipeline(server.port, [GET('/prom')]);
    assert.equal(renders, 2);
  } finally {
    await server.close();
  }
});

test('a refusal is reported as the first again a minute after the last one reported so, however many came between', { timeout: 10_000 }, async () => {
  let clock = 0;
  const refusals: HttpRefusal[] = [];
  const server = await startMetricsHttpServer({
    host: '127.0.0.1',
    port: 0,
    metrics: new NodeMetrics({ nodeId: 'scm1', peers: [] }),
    status: () => sampleStatus(),
    readiness: () => ({ ready: true, reason: 'ok' }),
    onRefused: (r) => refusals.push(r),
    now: () => clock,
  });
  try {
    const requests = Array.from({ length: MAX_WAITING_REQUESTS + 2 }, () => GET('/healthz'));
    for (const at of [0, 30_000, 61_000, 90_000, 121_000]) {
      clock = at;
      const n = refusals.length + 1;
      await flood(server.port, requests, () => refusals.length === n);
    }
    // Refusals 30 s apart: reported at 0, at 61 s (a minute after 0) and at 121 s (after 61 s).
    assert.deepEqual(refusals.map((r) => r.first), [true, false, true, false, true]);
  } finally {
    await server.close();
  }
});

test('a rendering that never settles is shared for RENDER_SHARE_MS only: later scrapes render again and are answered', { timeout: 10_000 }, async () => {
  let clock = 0;
  const metrics = new NodeMetrics({ nodeId: 'scm1', peers: [] });
  const render = metrics.render.bind(metrics);
  let renders = 0;
  metrics.render = () => (++renders === 1 ? new Promise<string>(() => undefined) : render());
  const server = await startMetricsHttpServer({ host: '127.0.0.1', port: 0, metrics, status: () => sampleStatus(), readiness: () => ({ ready: true, reason: 'ok' }), now: () => clock });
  const stuck = pipeline(server.port, [GET('/prom')]);
  try {
    while (renders === 0) await new Promise((resolve) => setTimeout(resolve, 5));
    clock = 10_000;
    const later = await pipeline(server.port, [GET('/prom')]);
    assert.match(later.received, /^HTTP\/1\.1 200[\s\S]*scm_raft_term/);
    assert.equal(renders, 2);
  } finally {
    await server.close();
  }
  assert.equal((await stuck).received, '', 'the scrape that waited for the render that hangs got nothing');
});
