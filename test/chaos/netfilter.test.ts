// The partition rules on this machine's loopback: a node's uid cannot reach the other side's ports
// while root (the workload's clients) still can; healing restores the link; and the chain goes away
// on every way out, SIGTERM and SIGINT included. Skipped (and saying why) without root or iptables.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer, type Server } from 'node:net';
import { fileURLToPath } from 'node:url';
import { chainExists, Netfilter, netfilterAvailability } from './netfilter.js';

const availability = netfilterAvailability();
const skip = availability.ok ? false : `partitions need root and iptables: ${availability.reason}`;
const UID = 64_999;

async function listen(): Promise<{ server: Server; port: number }> {
  const server = createServer((socket) => socket.end('hello'));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, port: (server.address() as { port: number }).port };
}

/** Whether a process running as `uid` gets the server's greeting within a second. */
function reaches(port: number, uid: number | undefined): Promise<boolean> {
  const script = `const s=require('net').connect(${port},'127.0.0.1');s.on('data',()=>process.exit(0));s.on('error',()=>process.exit(1));setTimeout(()=>process.exit(2),1000);`;
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['-e', script], { stdio: 'ignore', ...(uid !== undefined ? { uid, gid: uid } : {}) });
    child.on('exit', (code) => resolve(code === 0));
  });
}

test('a cut drops what one uid sends to the other side, only that; healing restores it', { skip }, async () => {
  const { server, port } = await listen();
  const net = new Netfilter(`SCMCHAOSTEST${process.pid}`);
  try {
    net.install();
    assert.equal(await reaches(port, UID), true, 'reachable before the cut');
    net.cut({ name: 'a', uid: UID, ports: [] }, { name: 'b', uid: UID + 1, ports: [port] });
    assert.equal(await reaches(port, UID), false, 'the cut uid cannot reach the port');
    assert.equal(await reaches(port, undefined), true, 'root (the clients) still can');
    net.healAll();
    assert.equal(await reaches(port, UID), true, 'reachable after healing');
  } finally {
    net.removeSync();
    server.close();
  }
  assert.equal(chainExists(net.chain), false);
});

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  test(`the chain is removed when the process gets ${signal}`, { skip }, async () => {
    const chain = `SCMCHAOSSIG${process.pid}${signal === 'SIGINT' ? 'I' : 'T'}`;
    const module = fileURLToPath(new URL('./netfilter.ts', import.meta.url));
    const script = `import { Netfilter } from ${JSON.stringify(module)}; new Netfilter(${JSON.stringify(chain)}).install(); console.log('ready'); setInterval(() => {}, 1000);`;
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((resolve) => child.stdout.once('data', () => resolve()));
    assert.equal(chainExists(chain), true);
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    child.kill(signal);
    assert.equal(await exited, signal === 'SIGINT' ? 130 : 143);
    assert.equal(chainExists(chain), false, `the chain outlived ${signal}`);
  });
}
