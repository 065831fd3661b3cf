// `scm admin …`: the operator verbs, each a thin layer over ScmClient, with Ozone's names and short
// flags where `ozone admin` has them. Every one finds the SCMs through `--scm host:port[,…]` or the
// configuration (scm-endpoints.ts), prints `-o table` (default) or `-o json` (also `--json`), and
// fails within seconds when nothing listens at any SCM address. RPC failures print the gRPC status
// name and the server's message and exit 1.
import { randomInt, randomUUID } from 'node:crypto';
import { isIP } from 'node:net';
import { ScmClient } from '../client/scm-client.js';
import {
  LIFE_CYCLE_STATES,
  PIPELINE_STATES,
  REPLICATION_FACTORS,
  REPLICATION_TYPES,
  type ContainerInfo,
  type LifeCycleState,
  type PipelineState,
  type ReplicationFactor,
  type ReplicationType,
} from '../api/scm-api.js';
import { EXIT_FAILURE, EXIT_OK, UsageError, type CommandContext, type CommandSpec, type OptionSpec } from './command.js';
import { consistencyTable, containerDetails, containersTable, datanodesTable, keyValues, pipelinesTable, replication, rolesJson, rolesTable } from './format.js';
import { requirePlaintextServers, requireSomeReachable } from './reachability.js';
import { resolveScmEndpoints, type ScmEndpoints } from './scm-endpoints.js';
import { SNAPSHOT_COMMANDS } from './snapshot-commands.js';

export const OUTPUT_FORMATS = ['table', 'json'] as const;

const COMMON_OPTIONS: readonly OptionSpec[] = [
  { name: 'scm', kind: 'string', valueName: 'HOST:PORT[,…]', description: 'SCM client addresses (default: the configured service, else 127.0.0.1:9860)' },
  { name: 'service-id', kind: 'string', valueName: 'ID', description: 'the SCM service of the configuration to use (one of ozone.scm.service.ids)' },
  { name: 'config', kind: 'string', valueName: 'FILE', description: 'ozone-site.xml naming the SCMs (default: $OZONE_CONF_DIR/ozone-site.xml when it exists)' },
  { name: 'output', short: 'o', kind: 'string', valueName: 'FORMAT', description: 'output format', choices: OUTPUT_FORMATS, default: 'table' },
  { name: 'json', kind: 'boolean', description: 'same as -o json' },
  { name: 'timeout', kind: 'integer', valueName: 'SECONDS', description: 'give up after this long, retries included', default: 30 },
];

/** How long the first look for a listening SCM may take (seconds, not the whole --timeout). */
const REACHABILITY_TIMEOUT_MS = 3_000;

const replicationOptions = (defaultFactor: ReplicationFactor): OptionSpec[] => [
  { name: 'replication-type', kind: 'string', valueName: 'TYPE', description: 'replication type', choices: REPLICATION_TYPES, default: 'RATIS' },
  { name: 'replication-factor', kind: 'string', valueName: 'FACTOR', description: 'replication factor', choices: REPLICATION_FACTORS, default: defaultFactor },
];

/** What a command prints: `json` for -o json, `human` otherwise, `notice` on stderr either way. */
export interface AdminResult {
  readonly json: unknown;
  readonly human: string;
  readonly notice?: string;
  /** EXIT_OK unless the answer itself is a failure (a consistency mismatch). */
  readonly exitCode?: number;
}

export interface AdminCall {
  readonly client: ScmClient;
  readonly endpoints: ScmEndpoints;
  readonly context: CommandContext;
}

export interface AdminSpec {
  readonly path: readonly string[];
  readonly summary: string;
  readonly options?: readonly OptionSpec[];
  readonly positionals?: CommandSpec['positionals'];
  /**
   * Checks the arguments (throwing UsageError) before anything is contacted, and returns the call
   * to make once an SCM is reachable.
   */
  plan(context: CommandContext): (call: AdminCall) => Promise<AdminResult>;
}

function outputFormat(context: CommandContext): (typeof OUTPUT_FORMATS)[number] {
  const format = context.requiredString('output');
  if (context.flag('json')) {
    if (context.given('output') && format !== 'json') throw new UsageError(`--json contradicts -o ${format}`, context.command);
    return 'json';
  }
  return format === 'json' ? 'json' : 'table';
}

export function admin(spec: AdminSpec): CommandSpec {
  return {
    path: ['admin', ...spec.path],
    summary: spec.summary,
    options: [...(spec.options ?? []), ...COMMON_OPTIONS],
    ...(spec.positionals !== undefined ? { positionals: spec.positionals } : {}),
    run: async (context) => {
      const format = outputFormat(context);
      const timeoutSeconds = context.integer('timeout') ?? 30;
      if (timeoutSeconds < 1) throw new UsageError('--timeout must be at least 1 second', context.command);
      const call = spec.plan(context);
      const endpoints = resolveScmEndpoints(context);
      await requireSomeReachable(endpoints.clientAddresses, Math.min(REACHABILITY_TIMEOUT_MS, timeoutSeconds * 1000));
      if (endpoints.channel === undefined) await requirePlaintextServers(endpoints.clientAddresses, Math.min(REACHABILITY_TIMEOUT_MS, timeoutSeconds * 1000));
      const client = new ScmClient({ addresses: [...endpoints.clientAddresses], deadlineMs: timeoutSeconds * 1000, ...(endpoints.channel !== undefined ? { channel: endpoints.channel } : {}) });
      try {
        const result = await call({ client, endpoints, context });
        context.io.stdout(format === 'json' ? `${JSON.stringify(result.json, null, 2)}\n` : result.human);
        if (result.notice !== undefined) context.io.stderr(result.notice);
        return result.exitCode ?? EXIT_OK;
      } finally {
        client.close();
      }
    },
  };
}

function containerIdArgument(context: CommandContext): number {
  const raw = context.positional(0);
  if (!/^\d+$/.test(raw) || Number(raw) < 1 || !Number.isSafeInteger(Number(raw))) {
    throw new UsageError(`CONTAINER_ID must be a positive whole number, got ${JSON.stringify(raw)}`, context.command);
  }
  return Number(raw);
}

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function parsePorts(context: CommandContext): { name: string; value: number }[] {
  const text = context.string('ports');
  if (text === undefined) return [];
  return text.split(',').map((part) => {
    const match = /^([A-Za-z0-9_.-]+)=(\d{1,5})$/.exec(part.trim());
    const value = Number(match?.[2] ?? 0);
    if (match === null || value < 1 || value > 65535) throw new UsageError(`--ports: ${JSON.stringify(part)} is not NAME=PORT`, context.command);
    return { name: match[1] ?? '', value };
  });
}

/** The events that take a container from its current state to CLOSED, as the datanodes' reports would. */
const CLOSE_STEPS: Partial<Record<LifeCycleState, 'FINALIZE' | 'CLOSE' | 'FORCE_CLOSE'>> = {
  OPEN: 'FINALIZE',
  CLOSING: 'CLOSE',
  QUASI_CLOSED: 'FORCE_CLOSE',
};

/** Containers asked for per ListContainer call: well below the server's default limit of 4096. */
export const CONTAINER_PAGE = 1_000;

/**
 * Up to `limit` containers from `startId` on (all of them when limit is null), a page at a time,
 * and whether more follow: one more than asked for is fetched to tell.
 */
async function listContainerPages(
  client: ScmClient,
  request: { startId: number; limit: number | null; state: LifeCycleState | undefined; stale: boolean },
): Promise<{ containers: ContainerInfo[]; more: boolean }> {
  const containers: ContainerInfo[] = [];
  let startId = request.startId;
  for (;;) {
    const want = request.limit === null ? CONTAINER_PAGE : Math.min(CONTAINER_PAGE, request.limit + 1 - containers.length);
    const page = await client.listContainers({
      startId,
      count: want,
      ...(request.state !== undefined ? { state: request.state } : {}),
      consistency: request.stale ? 'STALE' : 'LINEARIZABLE',
    });
    containers.push(...page);
    const last = page[page.length - 1];
    if (page.length < want || last === undefined) return { containers, more: false };
    if (request.limit !== null && containers.length > request.limit) return { containers: containers.slice(0, request.limit), more: true };
    startId = last.containerId + 1;
  }
}

export const ADMIN_COMMANDS: readonly CommandSpec[] = [
  admin({
    path: ['scm', 'roles'],
    summary: 'List the SCM nodes with their Raft role, term, commit and applied index.',
    plan: () => async ({ client }) => {
      const roles = await client.getScmRoles();
      return { json: rolesJson(roles), human: rolesTable(roles) };
    },
  }),
  admin({
    path: ['scm', 'check'],
    summary: 'Check that every SCM node\'s scm.db is the same: the leader writes a marker, each node hashes its state at it (exit 1 on a mismatch).',
    plan: () => async ({ client }) => {
      const report = await client.checkConsistency();
      return { json: report, human: consistencyTable(report), exitCode: report.consistent ? EXIT_OK : EXIT_FAILURE };
    },
  }),
  admin({
    path: ['scm', 'transfer'],
    summary: 'Transfer the leadership to another voting SCM node (-n ID, or -r for a random one).',
    options: [
      { name: 'new-leader-id', short: 'n', aliases: ['newLeaderId'], kind: 'string', valueName: 'ID', description: 'node id of the new leader' },
      { name: 'random', short: 'r', kind: 'boolean', description: 'transfer to a voting follower chosen at random' },
    ],
    plan: (context) => {
      const named = context.string('new-leader-id');
      const random = context.flag('random');
      if (named === undefined && !random) throw new UsageError('give the new leader with -n/--new-leader-id ID, or -r/--random', context.command);
      if (named !== undefined && random) throw new UsageError('give either -n/--new-leader-id or -r/--random, not both', context.command);
      return async ({ client }) => {
        const before = await client.getClusterInfo();
        let target = named;
        if (target === undefined) {
          const followers = (await client.getScmRoles()).filter((r) => r.role === 'FOLLOWER');
          const chosen = followers[randomInt(Math.max(1, followers.length))];
          if (chosen === undefined) throw new Error('no voting follower to transfer the leadership to (see `scm admin scm roles`)');
          target = chosen.nodeId;
        }
        const previousLeaderId = before.leaderId === '' ? null : before.leaderId;
        if (target === previousLeaderId) {
          return { json: { leaderId: target, previousLeaderId, transferred: false }, human: `${target} is already the leader; nothing to transfer.\n` };
        }
        const result = await client.transferLeadership(target);
        return {
          json: { leaderId: result.leaderId, previousLeaderId, transferred: true },
          human: `Leadership transferred from ${previousLeaderId ?? '(no leader)'} to ${result.leaderId}.\n`,
        };
      };
    },
  }),
  admin({
    path: ['scm', 'decommission'],
    summary: 'Remove an SCM node from the Raft group (as `ozone admin scm decommission`).',
    options: [{ name: 'nodeid', kind: 'string', valueName: 'ID', description: 'node id of the SCM to remove', required: true }],
    plan: (context) => {
      const nodeId = context.requiredString('nodeid');
      return async ({ client }) => {
        const members = await client.removeScm(nodeId);
        return {
          json: { removed: nodeId, members },
          human:
            `SCM ${nodeId} is removed from the group; members now: ${members.map((m) => m.nodeId).join(', ')}.\n` +
            `Stop it; before it runs again, clear its directories and \`scm bootstrap\` it.\n`,
        };
      };
    },
  }),
  admin({
    path: ['container', 'create'],
    summary: 'Allocate a container on an OPEN pipeline.',
    options: [...replicationOptions('ONE'), { name: 'owner', kind: 'string', valueName: 'NAME', description: 'container owner', default: 'OZONE' }],
    plan: (context) => {
      const request = {
        replicationType: context.requiredString('replication-type') as ReplicationType,
        replicationFactor: context.requiredString('replication-factor') as ReplicationFactor,
        owner: context.requiredString('owner'),
      };
      return async ({ client }) => {
        const created = await client.allocateContainer(request);
        const c = created.container;
        return { json: created, human: `Container ${c.containerId} is created on pipeline ${c.pipelineId} (${replication(c)}, ${c.state}).\n` };
      };
    },
  }),
  admin({
    path: ['container', 'list'],
    summary: 'List containers with id >= --start, in id order: the first --count (20), or --all.',
    options: [
      { name: 'start', short: 's', kind: 'integer', valueName: 'ID', description: 'first container id', default: 0 },
      { name: 'count', short: 'c', kind: 'integer', valueName: 'N', description: 'most containers to list', default: 20 },
      { name: 'all', short: 'a', kind: 'boolean', description: 'list every container (fetched a page at a time)' },
      { name: 'state', kind: 'string', valueName: 'STATE', description: 'only containers in this state', choices: LIFE_CYCLE_STATES },
      { name: 'stale', kind: 'boolean', description: 'read from the node asked, without a leader round-trip' },
    ],
    plan: (context) => {
      const all = context.flag('all');
      if (all && context.given('count')) throw new UsageError('give either -c/--count or -a/--all, not both', context.command);
      const count = context.integer('count') ?? 20;
      if (count < 1) throw new UsageError('--count must be at least 1', context.command);
      const request = {
        startId: context.integer('start') ?? 0,
        limit: all ? null : count,
        state: context.string('state') as LifeCycleState | undefined,
        stale: context.flag('stale'),
      };
      return async ({ client }) => {
        const { containers, more } = await listContainerPages(client, request);
        const last = containers[containers.length - 1];
        const notice =
          more && last !== undefined
            ? `Listed the first ${containers.length} containers; more follow. Next: --start ${last.containerId + 1}; everything: --all.\n`
            : undefined;
        return { json: containers, human: containers.length === 0 ? 'No containers.\n' : containersTable(containers), ...(notice !== undefined ? { notice } : {}) };
      };
    },
  }),
  admin({
    path: ['container', 'info'],
    summary: 'Show a container with its pipeline and datanodes.',
    positionals: [{ name: 'container_id', description: 'the container id' }],
    plan: (context) => {
      const id = containerIdArgument(context);
      return async ({ client }) => {
        const info = await client.getContainerWithPipeline(id);
        const p = info.pipeline;
        const human =
          keyValues([...containerDetails(info.container), ['Pipeline state', p.state], ['Pipeline members', p.memberIds.join(', ') || '-']]) +
          (info.datanodes.length > 0 ? `Datanodes:\n${datanodesTable(info.datanodes)}` : '');
        return { json: info, human };
      };
    },
  }),
  admin({
    path: ['container', 'close'],
    summary: 'Close a container: FINALIZE it, then CLOSE it (or FORCE_CLOSE from QUASI_CLOSED).',
    positionals: [{ name: 'container_id', description: 'the container id' }],
    plan: (context) => {
      const id = containerIdArgument(context);
      return async ({ client }) => {
        let container: ContainerInfo = await client.getContainer(id);
        const events: string[] = [];
        for (let step = CLOSE_STEPS[container.state]; step !== undefined; step = CLOSE_STEPS[container.state]) {
          container = await client.updateContainerState(id, step);
          events.push(step);
        }
        const human =
          container.state === 'CLOSED'
            ? `Container ${id} is CLOSED${events.length === 0 ? ' (it already was)' : ` (${events.join(', then ')})`}.\n`
            : `Container ${id} is ${container.state}; a container in that state cannot be closed.\n`;
        return { json: container, human };
      };
    },
  }),
  admin({
    path: ['pipeline', 'create'],
    summary: 'Create a pipeline on registered datanodes (the leader picks them unless --nodes is given).',
    options: [...replicationOptions('THREE'), { name: 'nodes', kind: 'string', valueName: 'UUID[,UUID…]', description: 'member datanode uuids' }],
    plan: (context) => {
      const nodes = context.string('nodes');
      const memberIds = nodes === undefined ? [] : nodes.split(',').map((id) => id.trim());
      for (const id of memberIds) if (!UUID_RE.test(id)) throw new UsageError(`--nodes: ${JSON.stringify(id)} is not a datanode UUID`, context.command);
      const request = {
        replicationType: context.requiredString('replication-type') as ReplicationType,
        replicationFactor: context.requiredString('replication-factor') as ReplicationFactor,
        memberIds,
      };
      return async ({ client }) => {
        const pipeline = await client.createPipeline(request);
        return { json: pipeline, human: `Pipeline ${pipeline.id} is created (${replication(pipeline)}, ${pipeline.state}) on ${pipeline.memberIds.join(', ')}.\n` };
      };
    },
  }),
  admin({
    path: ['pipeline', 'list'],
    summary: 'List pipelines, optionally filtered.',
    options: [
      { name: 'replication-type', kind: 'string', valueName: 'TYPE', description: 'only this replication type', choices: REPLICATION_TYPES },
      { name: 'replication-factor', kind: 'string', valueName: 'FACTOR', description: 'only this factor', choices: REPLICATION_FACTORS },
      { name: 'state', kind: 'string', valueName: 'STATE', description: 'only this state', choices: PIPELINE_STATES },
    ],
    plan: (context) => {
      const type = context.string('replication-type') as ReplicationType | undefined;
      const factor = context.string('replication-factor') as ReplicationFactor | undefined;
      const state = context.string('state') as PipelineState | undefined;
      return async ({ client }) => {
        const pipelines = await client.listPipelines({
          ...(type !== undefined ? { replicationType: type } : {}),
          ...(factor !== undefined ? { replicationFactor: factor } : {}),
          ...(state !== undefined ? { state } : {}),
        });
        return { json: pipelines, human: pipelines.length === 0 ? 'No pipelines.\n' : pipelinesTable(pipelines) };
      };
    },
  }),
  admin({
    path: ['pipeline', 'close'],
    summary: 'Close a pipeline.',
    positionals: [{ name: 'pipeline_id', description: 'the pipeline id (a UUID)' }],
    plan: (context) => {
      const id = context.positional(0);
      if (!UUID_RE.test(id)) throw new UsageError(`PIPELINE_ID must be a UUID, got ${JSON.stringify(id)}`, context.command);
      return async ({ client }) => {
        const pipeline = await client.closePipeline(id);
        return { json: pipeline, human: `Pipeline ${pipeline.id} is ${pipeline.state}.\n` };
      };
    },
  }),
  admin({
    path: ['datanode', 'register'],
    summary: 'Register a datanode (its uuid is generated unless --uuid is given).',
    options: [
      { name: 'uuid', kind: 'string', valueName: 'UUID', description: 'datanode uuid' },
      { name: 'hostname', kind: 'string', valueName: 'HOST', description: 'datanode host name', required: true },
      { name: 'ip', kind: 'string', valueName: 'ADDRESS', description: 'datanode IP address', required: true },
      { name: 'ports', kind: 'string', valueName: 'NAME=PORT[,…]', description: 'named ports, e.g. RATIS=9858,STANDALONE=9859' },
    ],
    plan: (context) => {
      const uuid = context.string('uuid') ?? randomUUID();
      if (!UUID_RE.test(uuid)) throw new UsageError(`--uuid: ${JSON.stringify(uuid)} is not a UUID`, context.command);
      const ipAddress = context.requiredString('ip');
      if (isIP(ipAddress) === 0) throw new UsageError(`--ip: ${JSON.stringify(ipAddress)} is not an IP address`, context.command);
      const datanode = { uuid, hostname: context.requiredString('hostname'), ipAddress, ports: parsePorts(context) };
      return async ({ client }) => {
        const registered = await client.registerDatanode(datanode);
        return { json: registered, human: `Datanode ${registered.uuid} (${registered.hostname}, ${registered.ipAddress}) is registered.\n` };
      };
    },
  }),
  admin({
    path: ['datanode', 'list'],
    summary: 'List registered datanodes.',
    plan: () => async ({ client }) => {
      const datanodes = await client.listDatanodes();
      return { json: datanodes, human: datanodes.length === 0 ? 'No datanodes.\n' : datanodesTable(datanodes) };
    },
  }),
  ...SNAPSHOT_COMMANDS.map(admin),
];
