// `scm repair raft-meta`: a new raft-meta for a stopped node whose raft-meta is missing or damaged
// (src/server/raft-meta-repair.ts says how the term is chosen). This file asks the other members
// for their terms, so that the new term is above every term a vote can have been cast in: a vote
// leaves no trace on this node beyond raft-meta, and the candidate it went to holds a term at least
// that high. It writes nothing unless every other member answered or --peer-term says more.
import { ScmClient } from '../client/scm-client.js';
import { requireSelf, type ScmPeerConfig } from '../server/config.js';
import { nodeChannel, type ChannelFactory } from '../server/client-tls.js';
import { repairRaftMeta, type RaftMetaRepairResult } from '../server/raft-meta-repair.js';
import { EXIT_FAILURE, EXIT_OK, UsageError, type CommandContext, type CommandSpec } from './command.js';
import { CONFIG_OPTIONS, configFromCli } from './node-commands.js';
import { acceptsConnections } from './reachability.js';

const ASK_TIMEOUT_MS = 3_000;

/** Each other member's own term (what it reports of itself), or undefined where it does not answer. */
async function memberTerms(members: readonly ScmPeerConfig[], timeoutMs: number, channel: ChannelFactory | undefined): Promise<Map<string, number | undefined>> {
  const terms = new Map<string, number | undefined>();
  await Promise.all(
    members.map(async (member) => {
      terms.set(member.nodeId, undefined);
      if (!(await acceptsConnections(member.clientAddress, timeoutMs))) return;
      // With TLS the node asks as itself, as bootstrap does.
      const client = new ScmClient({ addresses: [member.clientAddress], deadlineMs: timeoutMs, ...(channel !== undefined ? { channel } : {}) });
      try {
        const own = (await client.getScmRoles({ selfOnly: true })).find((r) => r.nodeId === member.nodeId);
        if (own !== undefined) terms.set(member.nodeId, own.term);
      } catch {
        // Not answering: it stays undefined.
      } finally {
        client.close();
      }
    }),
  );
  return terms;
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
      description: 'the highest term any member has reported (scm_raft_term), needed when one cannot be asked; the new term is above it',
    },
    { name: 'offline', kind: 'boolean', description: 'do not ask the other members (the whole cluster is down); needs --peer-term' },
  ],
  async run(ctx: CommandContext) {
    const config = configFromCli(ctx);
    const given = ctx.integer('peer-term');
    if (given !== undefined && given < 0) throw new UsageError('--peer-term must be 0 or more', ctx.command);
    const self = requireSelf(config);
    const others = config.peers.filter((p) => p.nodeId !== self.nodeId);
    // A vote leaves no trace in this node's log or scm.db: only the other members' terms bound the
    // term it may have voted in (the candidate it voted for has a term at least that high). So every
    // other member must report its term, or the operator must say what the highest one is.
    let asked: number | undefined;
    let askedText: string;
    if (others.length === 0) {
      askedText = 'no other members configured';
    } else if (ctx.flag('offline')) {
      if (given === undefined) {
        throw new UsageError(
          '--offline needs --peer-term TERM, the highest term any member has reported (scm_raft_term), the one this node may have voted for included: without it the new term could be one this node already voted in',
          ctx.command,
        );
      }
      askedText = 'other members not asked (--offline)';
    } else {
      const terms = await memberTerms(others, ASK_TIMEOUT_MS, nodeChannel(config));
      const silent = others.filter((m) => terms.get(m.nodeId) === undefined);
      const answered = [...terms.values()].filter((t): t is number => t !== undefined);
      asked = answered.length > 0 ? Math.max(...answered) : undefined;
      askedText = others.map((m) => `${m.nodeId} ${terms.get(m.nodeId) ?? 'no answer'}`).join(', ');
      if (silent.length > 0 && given === undefined) {
        ctx.io.stderr(
          `scm: raft-meta not repaired: ${silent.map((m) => `${m.nodeId} (${m.clientAddress})`).join(', ')} did not answer, and the term this node voted in ` +
            'may be known only there. Start them and run this again, or give --peer-term TERM with the highest scm_raft_term any member has shown.\n',
        );
        return EXIT_FAILURE;
      }
    }
    if (given !== undefined) askedText += `, --peer-term ${given}`;
    const peerTerm = given === undefined ? asked : Math.max(given, asked ?? 0);
    const result = await repairRaftMeta(config, peerTerm !== undefined ? { peerTerm } : {});
    ctx.io.stdout(describe(result, askedText));
    return EXIT_OK;
  },
};
