// `scm repair raft-meta`: a new raft-meta for a stopped node whose raft-meta is missing or damaged
// (src/server/raft-meta-repair.ts says how the term is chosen). This file asks the other members
// for their terms, so that the new term is above every term a vote can have been cast in.
import { ScmClient } from '../client/scm-client.js';
import { requireSelf } from '../server/config.js';
import { nodeChannel, type ChannelFactory } from '../server/client-tls.js';
import { repairRaftMeta, type RaftMetaRepairResult } from '../server/raft-meta-repair.js';
import { EXIT_OK, UsageError, type CommandContext, type CommandSpec } from './command.js';
import { CONFIG_OPTIONS, configFromCli } from './node-commands.js';
import { acceptsConnections } from './reachability.js';

const ASK_TIMEOUT_MS = 3_000;

/** The highest term any running member reports, or undefined when none answers. */
async function highestPeerTerm(addresses: readonly string[], timeoutMs: number, channel: ChannelFactory | undefined): Promise<number | undefined> {
  const open = await Promise.all(addresses.map(async (address) => ((await acceptsConnections(address, timeoutMs)) ? address : undefined)));
  let highest: number | undefined;
  for (const address of open) {
    if (address === undefined) continue;
    // With TLS the node asks as itself, as bootstrap does.
    const client = new ScmClient({ addresses: [address], deadlineMs: timeoutMs, ...(channel !== undefined ? { channel } : {}) });
    try {
      for (const role of await client.getScmRoles()) highest = Math.max(highest ?? 0, role.term);
    } catch {
      // Not answering: another member may.
    } finally {
      client.close();
    }
  }
  return highest;
}

function describe(result: RaftMetaRepairResult, asked: string): string {
  switch (result.outcome) {
    case 'fresh':
      return `${result.metaFile} does not exist and this node has stored nothing (no log entries, nothing applied): it starts at term 0. Nothing to repair.\n`;
    case 'intact':
      return `${result.metaFile} is intact (term ${result.term}, ${result.votedFor === '' ? 'no vote' : `voted for ${result.votedFor}`}). Nothing to repair.\n`;
    case 'repaired': {
      const e = result.evidence;
      const lines = [
        `${result.metaFile}: ${result.problem}.`,
        ...(result.keptAs !== undefined ? [`The damaged file is kept as ${result.keptAs}.`] : []),
        ...result.warnings.map((w) => `Opening the log: ${w}.`),
        `Highest terms: log ${e.log} (last index ${e.logLastIndex}), raft-meta.conf ${e.conf}, scm.db ${e.scmDb}, ${asked}.`,
        `Wrote term=${result.term} with no vote. Start the node with \`scm start\`.`,
      ];
      return `${lines.join('\n')}\n`;
    }
  }
}

export const repairRaftMetaCommand: CommandSpec = {
  path: ['repair', 'raft-meta'],
  summary: 'write a new raft-meta (a higher term, no vote) for a stopped node whose raft-meta is missing or damaged',
  options: [
    ...CONFIG_OPTIONS,
    {
      name: 'peer-term',
      kind: 'integer',
      valueName: 'TERM',
      description: 'the highest term the other members report (scm_raft_term), when they cannot be asked; the new term is above it',
    },
    { name: 'offline', kind: 'boolean', description: 'do not ask the other members for their terms (the whole cluster is down)' },
  ],
  async run(ctx: CommandContext) {
    const config = configFromCli(ctx);
    const given = ctx.integer('peer-term');
    if (given !== undefined && given < 0) throw new UsageError('--peer-term must be 0 or more', ctx.command);
    const self = requireSelf(config);
    const others = config.peers.filter((p) => p.nodeId !== self.nodeId).map((p) => p.clientAddress);
    let asked: number | undefined;
    let askedText: string;
    if (ctx.flag('offline') || others.length === 0) {
      askedText = others.length === 0 ? 'no other members configured' : 'other members not asked (--offline)';
    } else {
      asked = await highestPeerTerm(others, ASK_TIMEOUT_MS, nodeChannel(config));
      askedText = asked === undefined ? `no other member answered at ${others.join(', ')}` : `other members ${asked}`;
      if (asked === undefined) {
        ctx.io.stderr(
          `scm: no other member answered at ${others.join(', ')}; the new term comes from this node's own files` +
            `${given !== undefined ? ' and --peer-term' : ''}. If they are running, stop here and check the addresses.\n`,
        );
      }
    }
    if (given !== undefined) askedText += `, --peer-term ${given}`;
    const peerTerm = given === undefined ? asked : Math.max(given, asked ?? 0);
    const result = await repairRaftMeta(config, peerTerm !== undefined ? { peerTerm } : {});
    ctx.io.stdout(describe(result, askedText));
    return EXIT_OK;
  },
};
