// What `scm start` prints, on real processes: JSON lines only (`jq` reads all of it), the reason a
// start fails among them (a held in_use.lock, a configuration that cannot be read), debug detail
// when asked for, an orderly stop on SIGTERM or when stdin closes, and every server of a local
// cluster's node bound to loopback.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { initNode } from '../../src/server/node-setup.js';
import { runNodeUntilSignalled } from '../../src/server/daemon.js';
import { TestCluster } from './harness.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const MAIN = join(ROOT, 'src/cli/main.ts');

/** Every line parsed as JSON; a line that is not JSON fails the test, naming it. */
function jsonLines(output: string): Record<string, unknown>[] {
  return output
    .split('\n')
    .filter((line) => line.length > 0)
    .map((line) => {
      try {
        return JSON.parse(line) as Record<string, unknown>;
      } catch {
        assert.fail(`not a JSON line: ${line}`);
      }
    });
}

interface Run {
  readonly code: number | null;
  readonly output: string;
}

function runScm(args: string[], options: { env?: NodeJS.ProcessEnv; stdin?: 'pipe' | 'ignore'; whenRunning?: (child: ReturnType<typeof spawn>) => void } = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', MAIN, ...args], {
      cwd: ROOT,
      env: { ...process.env, SCM_LOG_LEVEL: 'info', ...options.env },
      stdio: [options.stdin ?? 'ignore', 'pipe', 'pipe'],
    });
    let output = '';
    let whenRunning = options.whenRunning;
    const append = (b: Buffer): void => {
      output += b.toString();
      if (whenRunning !== undefined && /"msg":"SCM started"/.test(output)) {
        whenRunning(child);
        whenRunning = undefined;
      }
    };
    child.stdout?.on('data', append);
    child.stderr?.on('data', append);
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, output }));
  });
}

/** Addresses the sockets listening on `port` are bound to, from /proc/net/tcp and tcp6 (Linux). */
function listeningAddresses(port: number): string[] {
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
  const found: string[] = [];
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    if (!existsSync(table)) continue;
    for (const line of readFileSync(table, 'utf8').split('\n').slice(1)) {
      const [, local, , state] = line.trim().split(/\s+/);
      if (local === undefined || state !== '0A') continue;
      const [address, p] = local.split(':');
      if (p === hexPort && address !== undefined) found.push(address);
    }
  }
  return found;
}

test('scm start prints only JSON: running, a second start on the same data, a stop on SIGTERM', { timeout: 180_000 }, async () => {
  const cluster = await TestCluster.create(1);
  try {
    await initNode(cluster.config(1));
    cluster.start(1, { SCM_LOG_LEVEL: 'debug' });
    await cluster.waitFor('scm1 to lead', 60_000, async () => (await cluster.client([cluster.clientAddress(1)]).getClusterInfo()).leaderId !== '');

    const running = jsonLines(cluster.output(1));
    assert.ok(running.some((l) => l['msg'] === 'SCM started'));
    const configuration = running.find((l) => l['event'] === 'configuration');
    assert.equal(configuration?.['level'], 'debug', 'the effective configuration is debug detail');
    assert.equal((configuration?.['values'] as Record<string, string>)['ozone.scm.client.bind.host'], '127.0.0.1');

    const p = cluster.node(1).ports;
    for (const port of [p.client, p.ratis, p.grpc, p.http]) {
      assert.deepEqual(listeningAddresses(port), ['0100007F'], `port ${port} listens on 127.0.0.1 only`);
    }

    // A second process on the same data: refused, and the reason is a JSON line too.
    const second = await runScm(['start', '--config', cluster.siteXml, '--node-id', 'scm1']);
    assert.equal(second.code, 1, second.output);
    const lines = jsonLines(second.output);
    const fatal = lines.find((l) => l['level'] === 'fatal');
    assert.equal(fatal?.['event'], 'start_failed');
    assert.equal(fatal?.['nodeId'], 'scm1');
    assert.match(String(fatal?.['msg']), /^cannot start: storage directory .* is in use by pid \d+ .*in_use\.lock/);

    assert.equal(await cluster.kill(1, 'SIGTERM'), 0);
    const all = jsonLines(cluster.output(1));
    assert.ok(all.some((l) => l['event'] === 'stopping' && l['reason'] === 'SIGTERM'));
    assert.ok(all.some((l) => l['msg'] === 'SCM stopped'));
  } catch (err) {
    (err as Error).message += `\n${cluster.tails(30)}`;
    throw err;
  } finally {
    await cluster.destroy();
  }
});

test('with --stop-on-stdin-eof a node stops in order when its stdin closes', { timeout: 120_000 }, async () => {
  const cluster = await TestCluster.create(1);
  try {
    await initNode(cluster.config(1));
    const run = await runScm(['start', '--config', cluster.siteXml, '--node-id', 'scm1', '--stop-on-stdin-eof'], {
      stdin: 'pipe',
      whenRunning: (child) => child.stdin?.end(),
    });
    assert.equal(run.code, 0, run.output);
    const lines = jsonLines(run.output);
    assert.ok(lines.some((l) => l['event'] === 'stopping' && l['reason'] === 'stdin closed'), run.output);
    assert.ok(lines.some((l) => l['msg'] === 'SCM stopped'));
  } finally {
    await cluster.destroy();
  }
});

test('a configuration that cannot be read, a missing VERSION: one fatal JSON line each', { timeout: 60_000 }, async () => {
  const cluster = await TestCluster.create(1);
  try {
    const missing = await runScm(['start', '--config', join(cluster.dir, 'nope.xml'), '--node-id', 'scm1']);
    assert.equal(missing.code, 1);
    const [line, ...rest] = jsonLines(missing.output);
    assert.deepEqual(rest, []);
    assert.equal(line?.['level'], 'fatal');
    assert.equal(line?.['nodeId'], 'scm1', 'the id given on the command line');
    assert.match(String(line?.['msg']), /^cannot start: cannot read configuration file .*nope\.xml/);
    const anonymous = jsonLines((await runScm(['start', '--config', join(cluster.dir, 'nope.xml')])).output);
    assert.equal(anonymous[0]?.['nodeId'], null, 'no node id known yet');

    const uninitialised = await runScm(['start', '--config', cluster.siteXml, '--node-id', 'scm1']);
    assert.equal(uninitialised.code, 1);
    assert.match(String(jsonLines(uninitialised.output).at(-1)?.['msg']), /VERSION does not exist: run `scm init`/);
  } finally {
    await cluster.destroy();
  }
});

test("Node's own warnings during start-up are JSON lines too", { timeout: 60_000 }, async () => {
  const cluster = await TestCluster.create(1);
  try {
    let text = '';
    const destination = new Writable({
      write(chunk: Buffer, _encoding, callback) {
        text += chunk.toString();
        callback();
      },
    });
    const code = await runNodeUntilSignalled(
      { env: {} },
      {
        nodeIdHint: 'scm1',
        loadConfig: () => cluster.config(1),
        prepare: async () => {
          process.emitWarning('careful', 'TestWarning');
          await new Promise((resolve) => setImmediate(resolve));
          throw new Error('prepare failed on purpose');
        },
        destination,
      },
    );
    assert.equal(code, 1);
    const lines = jsonLines(text);
    assert.deepEqual(
      lines.map((l) => [l['level'], l['msg']]),
      [
        ['warn', 'careful'],
        ['fatal', 'cannot start: prepare failed on purpose'],
      ],
    );
    assert.equal(process.listenerCount('warning'), 1, "Node's default warning printer is back");
  } finally {
    await cluster.destroy();
  }
});
