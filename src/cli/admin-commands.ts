// `scm admin …`: the operator verbs, each a thin layer over ScmClient. Every one takes
// `--scm host:port[,…]` (default 127.0.0.1:9860) and `--json`. RPC failures print the gRPC status
// name and the server's message and exit 1.
import { randomUUID } from 'node:crypto';
import { isIP } from 'node:net';
import { DEFAULT_SCM_ADDRESS, ScmClient, parseAddressList } from '../client/scm-client.js';
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
import { EXIT_OK, UsageError, type CommandContext, type CommandSpec, type OptionSpec } from './command.js';
import { containerDetails, containersTable, datanodesTable, keyValues, pipelinesTable, replication, rolesTable } from './format.js';

const COMMON_OPTIONS: readonly OptionSpec[] = [
  { name: 'scm', kind: 'string', valueName: 'HOST:PORT[,…]', description: 'SCM client addresses', default: DEFAULT_SCM_ADDRESS },
  { name: 'json', kind: 'boolean', description: 'print JSON instead of a table' },
  { name: 'timeout', kind: 'integer', valueName: 'SECONDS', description: 'give up after this long, retries included', default: 30 },
];

const replicationOptions = (defaultFactor: ReplicationFactor): OptionSpec[] => [
  { name: 'replication-type', kind: 'string', valueName: 'TYPE', description: 'replication type', choices: REPLICATION_TYPES, default: 'RATIS' },
  { name: 'replication-factor', kind: 'string', valueName: 'FACTOR', description: 'replication factor', choices: REPLICATION_FACTORS, default: defaultFactor },
];

interface AdminSpec {
  readonly path: readonly string[];
  readonly summary: string;
  readonly options?: readonly OptionSpec[];
  readonly positionals?: CommandSpec['positionals'];
  /** Returns what `--json` prints; `human` renders it otherwise. */
  run(client: ScmClient, context: CommandContext): Promise<{ json: unknown; human: string }>;
}

function admin(spec: AdminSpec): CommandSpec {
  const command: CommandSpec = {
    path: ['admin', ...spec.path],
    summary: spec.summary,
    options: [...(spec.options ?? []), ...COMMON_OPTIONS],
    ...(spec.positionals !== undefined ? { positionals: spec.positionals } : {}),
    run: async (context) => {
      let addresses: string[];
      try {
        addresses = parseAddressList(context.requiredString('scm'));
      } catch (err) {
        throw new UsageError(`--scm: ${(err as Error).message}`, command);
      }
      const timeoutSeconds = context.integer('timeout') ?? 30;
      if (timeoutSeconds < 1) throw new UsageError('--timeout must be at least 1 second', command);
      const client = new ScmClient({ addresses, deadlineMs: timeoutSeconds * 1000 });
      try {
        const result = await spec.run(client, context);
        context.io.stdout(context.flag('json') ? `${JSON.stringify(result.json, null, 2)}\n` : result.human);
        return EXIT_OK;
      } finally {
        client.close();
      }
    },
  };
  return command;
}

function containerIdArgument(context: CommandContext, command: string): number {
  const raw = context.positional(0);
  if (!/^\d+$/.test(raw) || Number(raw) < 1 || !Number.isSafeInteger(Number(raw))) {
    throw new UsageError(`${command}: CONTAINER_ID must be a positive whole number, got ${JSON.stringify(raw)}`);
  }
  return Number(raw);
}

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function parsePorts(text: string | undefined): { name: string; value: number }[] {
  if (text === undefined) return [];
  return text.split(',').map((part) => {
    const match = /^([A-Za-z0-9_.-]+)=(\d{1,5})$/.exec(part.trim());
    const value = Number(match?.[2] ?? 0);
    if (match === null || value < 1 || value > 65535) throw new UsageError(`--ports: ${JSON.stringify(part)} is not NAME=PORT`);
    return { name: match[1] ?? '', value };
  });
}

/** The events that take a container from its current state to CLOSED, as the datanodes' reports would. */
const CLOSE_STEPS: Partial<Record<LifeCycleState, 'FINALIZE' | 'CLOSE' | 'FORCE_CLOSE'>> = {
  OPEN: 'FINALIZE',
  CLOSING: 'CLOSE',
  QUASI_CLOSED: 'FORCE_CLOSE',
};

export const ADMIN_COMMANDS: readonly CommandSpec[] = [
  admin({
    path: ['scm', 'roles'],
    summary: 'List the SCM nodes with their Raft role, term, commit and applied index.',
    run: async (client) => {
      const roles = await client.getScmRoles();
      return { json: roles, human: rolesTable(roles) };
    },
  }),
  admin({
    path: ['scm', 'transfer'],
    summary: 'Transfer the leadership to another SCM node.',
    options: [{ name: 'new-leader-id', kind: 'string', valueName: 'ID', description: 'node id of the new leader', required: true }],
    run: async (client, context) => {
      const result = await client.transferLeadership(context.requiredString('new-leader-id'));
      return { json: result, human: `Leadership transferred to ${result.leaderId}.\n` };
    },
  }),
  admin({
    path: ['container', 'create'],
    summary: 'Allocate a container on an OPEN pipeline.',
    options: [...replicationOptions('ONE'), { name: 'owner', kind: 'string', valueName: 'NAME', description: 'container owner', default: 'OZONE' }],
    run: async (client, context) => {
      const created = await client.allocateContainer({
        replicationType: context.requiredString('replication-type') as ReplicationType,
        replicationFactor: context.requiredString('replication-factor') as ReplicationFactor,
        owner: context.requiredString('owner'),
      });
      const c = created.container;
      return { json: created, human: `Container ${c.containerId} is created on pipeline ${c.pipelineId} (${replication(c)}, ${c.state}).\n` };
    },
  }),
  admin({
    path: ['container', 'list'],
    summary: 'List containers with id >= --start, in id order.',
    options: [
      { name: 'start', kind: 'integer', valueName: 'ID', description: 'first container id', default: 0 },
      { name: 'count', kind: 'integer', valueName: 'N', description: 'most containers to list', default: 20 },
      { name: 'state', kind: 'string', valueName: 'STATE', description: 'only containers in this state', choices: LIFE_CYCLE_STATES },
      { name: 'stale', kind: 'boolean', description: 'read from the node asked, without a leader round-trip' },
    ],
    run: async (client, context) => {
      const count = context.integer('count') ?? 20;
      if (count < 1) throw new UsageError('--count must be at least 1');
      const state = context.string('state') as LifeCycleState | undefined;
      const containers = await client.listContainers({
        startId: context.integer('start') ?? 0,
        count,
        ...(state !== undefined ? { state } : {}),
        consistency: context.flag('stale') ? 'STALE' : 'LINEARIZABLE',
      });
      return { json: containers, human: containers.length === 0 ? 'No containers.\n' : containersTable(containers) };
    },
  }),
  admin({
    path: ['container', 'info'],
    summary: 'Show a container with its pipeline and datanodes.',
    positionals: [{ name: 'container_id', description: 'the container id' }],
    run: async (client, context) => {
      const info = await client.getContainerWithPipeline(containerIdArgument(context, 'container info'));
      const p = info.pipeline;
      const human =
        keyValues([
          ...containerDetails(info.container),
          ['Pipeline state', p.state],
          ['Pipeline members', p.memberIds.join(', ') || '-'],
        ]) + (info.datanodes.length > 0 ? `Datanodes:\n${datanodesTable(info.datanodes)}` : '');
      return { json: info, human };
    },
  }),
  admin({
    path: ['container', 'close'],
    summary: 'Close a container: FINALIZE it, then CLOSE it (or FORCE_CLOSE from QUASI_CLOSED).',
    positionals: [{ name: 'container_id', description: 'the container id' }],
    run: async (client, context) => {
      const id = containerIdArgument(context, 'container close');
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
    },
  }),
  admin({
    path: ['pipeline', 'create'],
    summary: 'Create a pipeline on registered datanodes (the leader picks them unless --nodes is given).',
    options: [...replicationOptions('THREE'), { name: 'nodes', kind: 'string', valueName: 'UUID[,UUID…]', description: 'member datanode uuids' }],
    run: async (client, context) => {
      const nodes = context.string('nodes');
      const memberIds = nodes === undefined ? [] : nodes.split(',').map((id) => id.trim());
      for (const id of memberIds) if (!UUID_RE.test(id)) throw new UsageError(`--nodes: ${JSON.stringify(id)} is not a datanode UUID`);
      const pipeline = await client.createPipeline({
        replicationType: context.requiredString('replication-type') as ReplicationType,
        replicationFactor: context.requiredString('replication-factor') as ReplicationFactor,
        memberIds,
      });
      return { json: pipeline, human: `Pipeline ${pipeline.id} is created (${replication(pipeline)}, ${pipeline.state}) on ${pipeline.memberIds.join(', ')}.\n` };
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
    run: async (client, context) => {
      const type = context.string('replication-type') as ReplicationType | undefined;
      const factor = context.string('replication-factor') as ReplicationFactor | undefined;
      const state = context.string('state') as PipelineState | undefined;
      const pipelines = await client.listPipelines({
        ...(type !== undefined ? { replicationType: type } : {}),
        ...(factor !== undefined ? { replicationFactor: factor } : {}),
        ...(state !== undefined ? { state } : {}),
      });
      return { json: pipelines, human: pipelines.length === 0 ? 'No pipelines.\n' : pipelinesTable(pipelines) };
    },
  }),
  admin({
    path: ['pipeline', 'close'],
    summary: 'Close a pipeline.',
    positionals: [{ name: 'pipeline_id', description: 'the pipeline id (a UUID)' }],
    run: async (client, context) => {
      const id = context.positional(0);
      if (!UUID_RE.test(id)) throw new UsageError(`pipeline close: PIPELINE_ID must be a UUID, got ${JSON.stringify(id)}`);
      const pipeline = await client.closePipeline(id);
      return { json: pipeline, human: `Pipeline ${pipeline.id} is ${pipeline.state}.\n` };
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
    run: async (client, context) => {
      const uuid = context.string('uuid') ?? randomUUID();
      if (!UUID_RE.test(uuid)) throw new UsageError(`--uuid: ${JSON.stringify(uuid)} is not a UUID`);
      const ipAddress = context.requiredString('ip');
      if (isIP(ipAddress) === 0) throw new UsageError(`--ip: ${JSON.stringify(ipAddress)} is not an IP address`);
      const datanode = await client.registerDatanode({ uuid, hostname: context.requiredString('hostname'), ipAddress, ports: parsePorts(context.string('ports')) });
      return { json: datanode, human: `Datanode ${datanode.uuid} (${datanode.hostname}, ${datanode.ipAddress}) is registered.\n` };
    },
  }),
  admin({
    path: ['datanode', 'list'],
    summary: 'List registered datanodes.',
    run: async (client) => {
      const datanodes = await client.listDatanodes();
      return { json: datanodes, human: datanodes.length === 0 ? 'No datanodes.\n' : datanodesTable(datanodes) };
    },
  }),
];
