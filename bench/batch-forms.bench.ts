// What each way of handing a batch to classic-level costs, for the batch applying allocations
// writes: per allocation a container put (8-byte key, buffer value), a retry record put (utf8 key,
// buffer value) and, in steady state, the delete of an expired retry record; per batch the apply
// clock. The same keys and values in each form, so LevelDB stores the same bytes:
//   sublevel-array  db.batch([{ type, sublevel, key, value }]) — what the state machine does
//   root-array      db.batch([{ type, key: '!table!' + key, value, keyEncoding, valueEncoding }])
//   chained         db.batch().put(key, value, { sublevel }) … .write()
//   chained-root    db.batch().put('!table!' + key, value, { keyEncoding, valueEncoding }) … .write()
// CPU (process.cpuUsage: every thread, LevelDB's included) per allocation, and a hash of what the
// database holds afterwards (the same for every form). Numbers only.
//
// Usage: npm run bench:batch-forms -- [--batches N] [--batch B] [form …]
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Level } from 'level';

type Db = Level<string, string>;
type Tables = ReturnType<typeof tables>;

function tables(db: Db) {
  return {
    containers: db.sublevel<Buffer, Buffer>('containers', { keyEncoding: 'buffer', valueEncoding: 'buffer' }),
    retryCache: db.sublevel<string, Buffer>('retryCache', { keyEncoding: 'utf8', valueEncoding: 'buffer' }),
    meta: db.sublevel<string, string>('meta', { keyEncoding: 'utf8', valueEncoding: 'utf8' }),
  };
}

const CONTAINER_VALUE = Buffer.alloc(60, 7);
const RETRY_VALUE = Buffer.alloc(90, 9);
const CONTAINERS_PREFIX = Buffer.from('!containers!');
/** Batches after which retry records start to expire (one per allocation). */
const EXPIRY_LAG = 100;

function containerKey(id: number): Buffer {
  const key = Buffer.allocUnsafe(8);
  key.writeUInt32BE(Math.floor(id / 0x1_0000_0000), 0);
  key.writeUInt32BE(id >>> 0, 4);
  return key;
}

/** Writes batch `b` of `size` allocations in one form. */
type Form = (db: Db, t: Tables, b: number, size: number) => Promise<void>;

const FORMS: Record<string, Form> = {
  'sublevel-array': async (db, t, b, size) => {
    const ops = [];
    for (let k = 0; k < size; k++) {
      ops.push({ type: 'put' as const, sublevel: t.containers, key: containerKey(b * size + k + 1), value: CONTAINER_VALUE });
      ops.push({ type: 'put' as const, sublevel: t.retryCache, key: `client-${k + 1}#${b + 1}`, value: RETRY_VALUE });
      if (b > EXPIRY_LAG) ops.push({ type: 'del' as const, sublevel: t.retryCache, key: `client-${k + 1}#${b - EXPIRY_LAG}` });
    }
    ops.push({ type: 'put' as const, sublevel: t.meta, key: 'applyClock', value: String(1_700_000_000_000 + b) });
    await db.batch<unknown, unknown>(ops, {});
  },
  'root-array': async (db, _t, b, size) => {
    const ops = [];
    for (let k = 0; k < size; k++) {
      const key = Buffer.concat([CONTAINERS_PREFIX, containerKey(b * size + k + 1)]);
      ops.push({ type: 'put' as const, key, value: CONTAINER_VALUE, keyEncoding: 'buffer', valueEncoding: 'buffer' });
      ops.push({ type: 'put' as const, key: `!retryCache!client-${k + 1}#${b + 1}`, value: RETRY_VALUE, keyEncoding: 'utf8', valueEncoding: 'buffer' });
      if (b > EXPIRY_LAG) ops.push({ type: 'del' as const, key: `!retryCache!client-${k + 1}#${b - EXPIRY_LAG}`, keyEncoding: 'utf8' });
    }
    ops.push({ type: 'put' as const, key: '!meta!applyClock', value: String(1_700_000_000_000 + b), keyEncoding: 'utf8', valueEncoding: 'utf8' });
    await db.batch<unknown, unknown>(ops as never, {});
  },
  chained: async (db, t, b, size) => {
    const batch = db.batch();
    const containers = { sublevel: t.containers };
    const retryCache = { sublevel: t.retryCache };
    for (let k = 0; k < size; k++) {
      batch.put<Buffer, Buffer>(containerKey(b * size + k + 1), CONTAINER_VALUE, containers);
      batch.put<string, Buffer>(`client-${k + 1}#${b + 1}`, RETRY_VALUE, retryCache);
      if (b > EXPIRY_LAG) batch.del<string>(`client-${k + 1}#${b - EXPIRY_LAG}`, retryCache);
    }
    batch.put<string, string>('applyClock', String(1_700_000_000_000 + b), { sublevel: t.meta });
    await batch.write();
  },
  'chained-root': async (db, _t, b, size) => {
    const batch = db.batch();
    const binary = { keyEncoding: 'buffer', valueEncoding: 'buffer' } as const;
    const textKey = { keyEncoding: 'utf8', valueEncoding: 'buffer' } as const;
    for (let k = 0; k < size; k++) {
      batch.put<Buffer, Buffer>(Buffer.concat([CONTAINERS_PREFIX, containerKey(b * size + k + 1)]), CONTAINER_VALUE, binary);
      batch.put<string, Buffer>(`!retryCache!client-${k + 1}#${b + 1}`, RETRY_VALUE, textKey);
      if (b > EXPIRY_LAG) batch.del<string>(`!retryCache!client-${k + 1}#${b - EXPIRY_LAG}`, { keyEncoding: 'utf8' });
    }
    batch.put('!meta!applyClock', String(1_700_000_000_000 + b));
    await batch.write();
  },
};

async function measure(name: string, form: Form, batches: number, size: number): Promise<number> {
  const dir = await mkdtemp(join(tmpdir(), 'scm-batch-forms-'));
  const db = new Level<string, string>(dir);
  await db.open();
  try {
    const t = tables(db);
    const warmup = Math.min(300, Math.floor(batches / 5));
    for (let b = 0; b < warmup; b++) await form(db, t, b, size);
    const cpu = process.cpuUsage();
    for (let b = warmup; b < batches; b++) await form(db, t, b, size);
    const used = process.cpuUsage(cpu);
    const micros = (used.user + used.system) / ((batches - warmup) * size);
    const hash = createHash('sha256');
    for await (const [key, value] of db.iterator<Buffer, Buffer>({ keyEncoding: 'buffer', valueEncoding: 'buffer' })) hash.update(key).update(value);
    process.stdout.write(`${name}: ${micros.toFixed(1)} µs CPU per allocation (contents ${hash.digest('hex').slice(0, 16)})\n`);
    return micros;
  } finally {
    await db.close();
    await rm(dir, { recursive: true, force: true });
  }
}

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { batches: { type: 'string', default: '3000' }, batch: { type: 'string', default: '64' } },
});
const batches = Number(values.batches);
const size = Number(values.batch);
if (!Number.isSafeInteger(batches) || batches < 10 || !Number.isSafeInteger(size) || size < 1) throw new Error('--batches ≥ 10 and --batch ≥ 1 are integers');
for (const name of positionals.length > 0 ? positionals : Object.keys(FORMS)) {
  const form = FORMS[name];
  if (form === undefined) throw new Error(`unknown form ${name}: one of ${Object.keys(FORMS).join(', ')}`);
  await measure(name, form, batches, size);
}
