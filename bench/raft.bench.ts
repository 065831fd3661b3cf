// Raft core throughput: proposals per second through a 3-node in-memory cluster with no I/O.
// Proposals are submitted in batches; every Ready is "persisted" into a MemoryLog at once and
// messages are delivered synchronously, so the numbers measure the core alone.
//   npm run bench:raft [-- --entries N --batch B --size BYTES]
import { MemoryLog, RaftNode, SeededRandom, type Message, type Membership } from '../src/raft/index.js';

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return fallback;
  const v = Number(process.argv[i + 1]);
  if (!Number.isSafeInteger(v) || v <= 0) throw new Error(`--${name} must be a positive integer`);
  return v;
}

const TOTAL = arg('entries', 1_000_000);
const BATCH = arg('batch', 1000);
const SIZE = arg('size', 128);

interface BenchNode {
  raft: RaftNode;
  log: MemoryLog;
  applied: number;
}

const ids = ['a', 'b', 'c'];
const members: Membership = { voters: ids.map((id) => ({ id, address: `${id}:9894`, priority: 0 })), nonVoters: [] };
const nodes = new Map<string, BenchNode>();
ids.forEach((id, k) => {
  const log = new MemoryLog();
  const raft = new RaftNode(
    {
      id,
      electionTicks: 10,
      heartbeatTicks: 1,
      preVote: true,
      checkQuorum: true,
      leaseRead: false,
      maxInflightMsgs: 256,
      maxInflightBytes: 64 * 1024 * 1024,
      maxBytesPerMsg: 1024 * 1024,
      random: new SeededRandom(k + 1),
    },
    log,
    { hardState: { term: 0, votedFor: '' }, membership: members, membershipIndex: 0, applied: 0 },
  );
  nodes.set(id, { raft, log, applied: 0 });
});

const queue: Message[] = [];
function pump(): void {
  for (;;) {
    let progressed = false;
    for (const n of nodes.values()) {
      const rd = n.raft.ready();
      if (rd === null) continue;
      progressed = true;
      n.log.append(rd.entries);
      for (const m of rd.messages) queue.push(m);
      for (const m of rd.messagesAfterPersist) queue.push(m);
      n.applied += rd.committedEntries.length;
      n.raft.advance();
    }
    let delivered = 0;
    while (queue.length > 0) {
      const batch = queue.splice(0, queue.length);
      for (const m of batch) (nodes.get(m.to) as BenchNode).raft.step(m);
      delivered += batch.length;
    }
    if (!progressed && delivered === 0) return;
  }
}

const leader = nodes.get('a') as BenchNode;
for (let i = 0; i < 100 && leader.raft.currentRole !== 'leader'; i++) {
  leader.raft.tick();
  pump();
}
if (leader.raft.currentRole !== 'leader') throw new Error('benchmark cluster elected no leader');

const payload = new Uint8Array(SIZE);
const start = process.hrtime.bigint();
let proposed = 0;
while (proposed < TOTAL) {
  const n = Math.min(BATCH, TOTAL - proposed);
  for (let i = 0; i < n; i++) {
    const r = leader.raft.propose(payload);
    if (!r.ok) throw new Error(`proposal refused: ${r.error}`);
  }
  proposed += n;
  pump();
}
const seconds = Number(process.hrtime.bigint() - start) / 1e9;
const target = leader.raft.lastIndex;
for (const [id, n] of nodes) {
  if (n.raft.appliedIndex !== target) throw new Error(`${id} applied ${n.raft.appliedIndex} of ${target}`);
}
const rate = Math.round(TOTAL / seconds);
console.log(
  `raft core: ${TOTAL} entries of ${SIZE} B in batches of ${BATCH} through 3 nodes: ` +
    `${seconds.toFixed(2)} s, ${rate.toLocaleString('en-US')} entries/s committed and applied on all nodes ` +
    `(${((rate * SIZE) / 1e6).toFixed(1)} MB/s payload)`,
);
