// The members' addresses the peer ports admit past their limit: hosts resolved through an injected
// lookup (literal IPs without one, IPv6 in canonical form), again on a configuration change, on
// each timer tick and on demand (rate-limited); each host on its own, with a timeout; a failed
// lookup keeps what was known and is logged once per episode; stop cancels the timer.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { LookupAddress } from 'node:dns';
import { canonicalAddress, MEMBER_REFRESH_ON_DEMAND_MS, MemberAddresses, type MemberAddressesOptions } from '../../src/server/member-addresses.js';

interface Harness {
  readonly members: MemberAddresses;
  /** What each host resolves to now; an Error makes its lookup fail. */
  readonly dns: Map<string, string[] | Error>;
  readonly looked: string[];
  readonly warnings: Array<{ fields: object; msg: string }>;
  readonly infos: Array<{ fields: object; msg: string }>;
  /** The timer's task, its period, and whether it was cancelled. */
  readonly timer: { task?: () => void; ms?: number; cancelled: boolean };
}

function harness(extra: Partial<MemberAddressesOptions> = {}): Harness {
  const dns = new Map<string, string[] | Error>();
  const looked: string[] = [];
  const warnings: Harness['warnings'] = [];
  const infos: Harness['infos'] = [];
  const timer: Harness['timer'] = { cancelled: false };
  const lookup = (hostname: string, options: { all: true }): Promise<LookupAddress[]> => {
    assert.deepEqual(options, { all: true });
    looked.push(hostname);
    const found = dns.get(hostname);
    if (found === undefined) return Promise.reject(Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND' }));
    if (found instanceof Error) return Promise.reject(found);
    return Promise.resolve(found.map((address) => ({ address, family: address.includes(':') ? 6 : 4 })));
  };
  const members = new MemberAddresses({
    lookup,
    every: (ms, task) => {
      timer.task = task;
      timer.ms = ms;
      return () => {
        timer.cancelled = true;
      };
    },
    log: { warn: (fields, msg) => warnings.push({ fields, msg }), info: (fields, msg) => infos.push({ fields, msg }) },
    ...extra,
  });
  return { members, dns, looked, warnings, infos, timer };
}

const sorted = (set: ReadonlySet<string>): string[] => [...set].sort();
/** Lets the lookups a timer tick started finish. */
const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

test('resolves host names through the lookup; literal IPs need none; matches an IPv4-mapped address', async () => {
  const h = harness();
  h.dns.set('scm1.example', ['10.0.0.1', '::FFFF:10.0.0.9']);
  h.dns.set('scm2.example', ['10.0.0.2', 'fd00::2']);
  await h.members.setHosts(['scm1.example', 'scm2.example', '10.0.0.3', '[FD00::3]', '[2001:DB8:0:0:0:0:0:1]', '[0:0:0:0:0:ffff:a00:4]']);
  assert.deepEqual(sorted(h.members.addresses()), ['10.0.0.1', '10.0.0.2', '10.0.0.3', '10.0.0.4', '10.0.0.9', '2001:db8::1', 'fd00::2', 'fd00::3']);
  assert.deepEqual(h.looked.sort(), ['scm1.example', 'scm2.example']);
  assert.ok(h.members.has('::ffff:10.0.0.1'));
  assert.ok(h.members.has('10.0.0.3'));
  assert.ok(h.members.has('10.0.0.4'), 'an IPv4-mapped literal, written out in full');
  assert.ok(!h.members.has('10.0.0.5'));
  assert.equal(canonicalAddress('::ffff:127.0.0.1'), '127.0.0.1');
  assert.equal(canonicalAddress('FD00::1'), 'fd00::1');
  assert.equal(canonicalAddress('::1'), '::1');
  // Node reports a link-local peer with its zone; a lookup answers without one.
  assert.equal(canonicalAddress('fe80::FC:ff:fe00:1%eth0'), 'fe80::fc:ff:fe00:1');
  assert.equal(canonicalAddress('::ffff:a00:5'), '10.0.0.5');
  assert.equal(canonicalAddress('unknown'), 'unknown');
});

test('a failed lookup keeps the addresses known before, logged once per failure episode', async () => {
  const h = harness();
  h.dns.set('scm1.example', ['10.0.0.1']);
  h.members.start();
  await h.members.setHosts(['scm1.example']);
  assert.deepEqual(sorted(h.members.addresses()), ['10.0.0.1']);

  h.dns.set('scm1.example', new Error('getaddrinfo EAI_AGAIN scm1.example'));
  for (let i = 0; i < 3; i++) await h.members.refresh();
  assert.deepEqual(sorted(h.members.addresses()), ['10.0.0.1'], 'kept');
  assert.equal(h.warnings.length, 1, h.warnings.map((w) => w.msg).join('\n'));
  assert.match(h.warnings[0]!.msg, /cannot resolve member host scm1\.example \(getaddrinfo EAI_AGAIN scm1\.example\).*10\.0\.0\.1/);

  // It resolves again (ending the episode); the next failure is logged again.
  h.dns.set('scm1.example', ['10.0.0.1']);
  await h.members.refresh();
  h.dns.set('scm1.example', new Error('getaddrinfo EAI_AGAIN scm1.example'));
  await h.members.refresh();
  await h.members.refresh();
  assert.equal(h.warnings.length, 2);
  assert.deepEqual(sorted(h.members.addresses()), ['10.0.0.1']);
  h.members.stop();
});

test('a changed address is picked up on the next timer tick; stop cancels the timer', async () => {
  const h = harness({ refreshMs: 30_000 });
  h.dns.set('scm2.example', ['10.0.0.2']);
  await h.members.setHosts(['scm2.example']);
  h.members.start();
  assert.equal(h.timer.ms, 30_000);
  await settle();
  assert.ok(h.members.has('10.0.0.2'));

  // A restarted pod comes back with a new IP; no configuration change.
  h.dns.set('scm2.example', ['10.0.0.22']);
  h.timer.task!();
  await settle();
  assert.ok(h.members.has('10.0.0.22'));
  assert.ok(!h.members.has('10.0.0.2'), 'the old address is no longer a member\'s');

  h.members.stop();
  assert.ok(h.timer.cancelled);
  const before = h.looked.length;
  await h.members.refresh();
  assert.equal(h.looked.length, before, 'no lookup after stop');
});

test('follows a membership change: a new member\'s host is resolved, a removed one\'s addresses go', async () => {
  const h = harness();
  h.dns.set('scm1.example', ['10.0.0.1']);
  h.dns.set('scm2.example', ['10.0.0.2']);
  h.dns.set('scm4.example', ['10.0.0.4']);
  await h.members.setHosts(['scm1.example', 'scm2.example']);
  assert.deepEqual(sorted(h.members.addresses()), ['10.0.0.1', '10.0.0.2']);
  await h.members.setHosts(['scm1.example', 'scm4.example']);
  assert.deepEqual(sorted(h.members.addresses()), ['10.0.0.1', '10.0.0.4']);
  assert.ok(h.infos.some((i) => /10\.0\.0\.4/.test(i.msg)), 'the change is logged');
  // The same hosts again (another configuration change): looked up again, nothing changes.
  const before = h.looked.length;
  const infos = h.infos.length;
  await h.members.setHosts(['scm4.example', 'scm1.example']);
  assert.equal(h.looked.length, before + 2);
  assert.equal(h.infos.length, infos, 'no change, nothing logged');
});

test('a host removed while its lookup is in flight does not come back when it answers', async () => {
  let answer: ((a: LookupAddress[]) => void) | undefined;
  const h = harness({
    lookup: (hostname) => (hostname === 'slow.example' ? new Promise((resolve) => (answer = resolve)) : Promise.resolve([{ address: '10.0.0.1', family: 4 }])),
  });
  const first = h.members.setHosts(['slow.example', 'scm1.example']);
  await settle();
  const second = h.members.setHosts(['scm1.example']);
  answer!([{ address: '10.0.0.5', family: 4 }]);
  await first;
  await second;
  assert.deepEqual(sorted(h.members.addresses()), ['10.0.0.1']);
});

test('a lookup that hangs holds up no other host, times out, counts as failed, is not started again while it runs, and its late answer is taken', { timeout: 5_000 }, async () => {
  let hung = 0;
  let answer: ((a: LookupAddress[]) => void) | undefined;
  const h = harness({
    lookupTimeoutMs: 30,
    lookup: (hostname) =>
      hostname === 'hang.example' ? (hung++, new Promise<LookupAddress[]>((resolve) => (answer = resolve))) : Promise.resolve([{ address: '10.0.0.4', family: 4 }]),
  });
  // The lookup's timeout is unref'd (it must not hold a stopping node up); this keeps the test's loop alive.
  const alive = setInterval(() => undefined, 1_000);
  const done = h.members.setHosts(['hang.example', 'scm4.example']);
  await settle();
  assert.ok(h.members.has('10.0.0.4'), 'scm4 is known while hang.example has not answered');
  // A refresh meanwhile does not look the hanging host up a second time.
  try {
    void h.members.refresh();
    assert.equal(hung, 1);
    await done;
  } finally {
    clearInterval(alive);
  }
  assert.equal(h.warnings.length, 1);
  assert.match(h.warnings[0]!.msg, /cannot resolve member host hang\.example \(the lookup of hang\.example did not answer within 30 ms/);
  assert.deepEqual(sorted(h.members.addresses()), ['10.0.0.4']);

  // Timed out, but still running (getaddrinfo holds a thread-pool thread): not started again.
  const alive2 = setInterval(() => undefined, 1_000);
  try {
    await h.members.refresh();
    await h.members.setHosts(['hang.example', 'scm4.example']);
  } finally {
    clearInterval(alive2);
  }
  assert.equal(hung, 1, 'one lookup of the hanging host at a time');
  assert.equal(h.warnings.length, 1, 'logged once in the episode');
  // Its answer comes late: taken.
  answer!([{ address: '10.0.0.7', family: 4 }]);
  await settle();
  assert.deepEqual(sorted(h.members.addresses()), ['10.0.0.4', '10.0.0.7']);
  assert.ok(h.infos.some((i) => /hang\.example resolves again/.test(i.msg)));
  void h.members.refresh();
  assert.equal(hung, 2, 'looked up anew once the first answered');
  h.members.stop();
});

test('a lookup rejecting with something other than an Error is a failed lookup, not a crash', async () => {
  const h = harness({ lookup: () => Promise.reject(undefined) });
  await h.members.setHosts(['odd.example']);
  assert.equal(h.warnings.length, 1);
  assert.match(h.warnings[0]!.msg, /cannot resolve member host odd\.example \(undefined\)/);
});

test('onChange runs when the addresses change, and only then', async () => {
  let changes = 0;
  const h = harness();
  const stop = h.members.onChange(() => changes++);
  h.dns.set('scm1.example', ['10.0.0.1']);
  await h.members.setHosts(['scm1.example']);
  assert.equal(changes, 1);
  await h.members.refresh();
  assert.equal(changes, 1, 'the same addresses');
  h.dns.set('scm1.example', ['10.0.0.11']);
  await h.members.refresh();
  assert.equal(changes, 2);
  await h.members.setHosts([]);
  assert.equal(changes, 3, 'a removed host');
  stop();
  await h.members.setHosts(['scm1.example']);
  assert.equal(changes, 3, 'a listener stopped hears nothing');
});

test('refreshOnDemand looks the hosts up again at most once per MEMBER_REFRESH_ON_DEMAND_MS', async () => {
  let now = 1_000_000;
  const h = harness({ now: () => now });
  h.dns.set('scm1.example', ['10.0.0.1']);
  await h.members.setHosts(['scm1.example']);
  const before = h.looked.length;
  h.members.refreshOnDemand();
  await settle();
  assert.equal(h.looked.length, before + 1);
  now += MEMBER_REFRESH_ON_DEMAND_MS - 1;
  h.members.refreshOnDemand();
  await settle();
  assert.equal(h.looked.length, before + 1, 'too soon');
  now += 1;
  h.dns.set('scm1.example', ['10.0.0.12']);
  h.members.refreshOnDemand();
  await settle();
  assert.equal(h.looked.length, before + 2);
  assert.ok(h.members.has('10.0.0.12'));
});
