// The node's own commands: `scm init`, `scm bootstrap`, `scm start` (as Ozone's `ozone scm --init`,
// `--bootstrap` and the daemon), and `scm cluster`, a local quorum of separate processes.
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { ENV_PREFIX, KEY, loadConfig, type ScmConfig } from '../server/config.js';
import { readVersionFileIfExists, versionFilePath } from '../server/version-file.js';
import { initNode } from '../server/node-setup.js';
import { runNodeUntilSignalled } from '../server/daemon.js';
import { bootstrapFromRunningScms } from './bootstrap.js';
import { runLocalCluster } from './local-quorum.js';
import { EXIT_FAILURE, EXIT_OK, UsageError, type CommandContext, type CommandSpec, type OptionSpec } from './command.js';
import { siteXmlPath } from './site-config.js';

export const CONFIG_OPTIONS: readonly OptionSpec[] = [
  { name: 'config', kind: 'string', valueName: 'FILE', description: 'ozone-site.xml to read (default: $OZONE_CONF_DIR/ozone-site.xml when it exists)' },
  { name: 'node-id', kind: 'string', valueName: 'ID', description: 'this node (overrides ozone.scm.node.id)' },
];

/** ozone-site.xml from --config or $OZONE_CONF_DIR, then OZONE-SITE.XML_ environment variables. */
export function configFromCli(ctx: CommandContext): ScmConfig {
  const file = siteXmlPath(ctx);
  const nodeId = ctx.string('node-id');
  return loadConfig({
    ...(file !== undefined ? { siteXmlPath: file } : {}),
    env: ctx.io.env,
    ...(nodeId !== undefined ? { overrides: { 'ozone.scm.node.id': nodeId } } : {}),
  });
}

const initCommand: CommandSpec = {
  path: ['init'],
  summary: 'initialise this SCM as the first node of a new cluster (creates scm/current/VERSION)',
  options: [...CONFIG_OPTIONS, { name: 'clusterid', kind: 'string', valueName: 'CID-…', description: 'use this clusterID instead of a new one' }],
  async run(ctx) {
    const config = configFromCli(ctx);
    const result = await initNode(config, ctx.string('clusterid'));
    ctx.io.stdout(
      result.created
        ? `SCM initialized: clusterID=${result.clusterId} (${versionFilePath(config.dbDir)})\n`
        : `SCM already initialized: clusterID=${result.clusterId} (${versionFilePath(config.dbDir)})\n`,
    );
    return EXIT_OK;
  },
};

const bootstrapCommand: CommandSpec = {
  path: ['bootstrap'],
  summary: 'join an existing cluster: take its clusterID from the running SCMs (start then joins the Raft group)',
  options: [...CONFIG_OPTIONS, { name: 'timeout', kind: 'integer', valueName: 'SECONDS', default: 60, description: 'how long to wait for a running SCM' }],
  async run(ctx) {
    const config = configFromCli(ctx);
    const result = await bootstrapFromRunningScms(config, (ctx.integer('timeout') ?? 60) * 1000);
    ctx.io.stdout(
      result.created ? `SCM bootstrapped: clusterID=${result.clusterId}\n` : `SCM already bootstrapped: clusterID=${result.clusterId}\n`,
    );
    return EXIT_OK;
  },
};

/** The node id named on the command line or in the environment, before the configuration is read. */
function nodeIdHint(ctx: CommandContext): string | undefined {
  return ctx.string('node-id') ?? ctx.io.env[`${ENV_PREFIX}${KEY.nodeId}`];
}

const startCommand: CommandSpec = {
  path: ['start'],
  summary: 'run this SCM until SIGTERM/SIGINT (ENSURE_SCM_INITIALIZED / ENSURE_SCM_BOOTSTRAPPED as Ozone images); prints JSON lines',
  options: [
    ...CONFIG_OPTIONS,
    { name: 'stop-on-stdin-eof', kind: 'boolean', description: 'also stop when standard input closes (`scm cluster` starts its nodes so)' },
  ],
  run(ctx) {
    const hint = nodeIdHint(ctx);
    return runNodeUntilSignalled(ctx.io, {
      ...(hint !== undefined ? { nodeIdHint: hint } : {}),
      loadConfig: () => configFromCli(ctx),
      stopOnStdinEof: ctx.flag('stop-on-stdin-eof'),
      prepare: async (config, log) => {
        // Ozone's container images: run init / bootstrap first when the named VERSION file is missing.
        const ensureInit = ctx.io.env['ENSURE_SCM_INITIALIZED'];
        const ensureBootstrap = ctx.io.env['ENSURE_SCM_BOOTSTRAPPED'];
        if (ensureInit !== undefined && ensureInit !== '' && !existsSync(ensureInit)) {
          const r = await initNode(config);
          log.info({ event: 'initialized', clusterId: r.clusterId }, `ENSURE_SCM_INITIALIZED: initialized clusterID=${r.clusterId}`);
        } else if (ensureBootstrap !== undefined && ensureBootstrap !== '' && !existsSync(ensureBootstrap)) {
          const r = await bootstrapFromRunningScms(config, 300_000);
          log.info({ event: 'bootstrapped', clusterId: r.clusterId }, `ENSURE_SCM_BOOTSTRAPPED: bootstrapped clusterID=${r.clusterId}`);
        }
        if (readVersionFileIfExists(config.dbDir) === null) {
          throw new Error(`${versionFilePath(config.dbDir)} does not exist: run \`scm init\` (first node) or \`scm bootstrap\` (the others) before \`scm start\``);
        }
      },
    });
  },
};

const clusterCommand: CommandSpec = {
  path: ['cluster'],
  summary: 'run a local quorum of separate SCM processes on 127.0.0.1 until Ctrl-C (a second run restarts it on its data)',
  options: [
    { name: 'nodes', kind: 'integer', valueName: 'N', default: 3, description: 'number of SCM processes' },
    { name: 'dir', kind: 'string', valueName: 'DIR', default: './data', description: 'data directory (one sub-directory per node)' },
    { name: 'base-port', kind: 'integer', valueName: 'PORT', default: 9860, description: "node 1's client port; Ratis +34, gRPC +35, HTTP +16 (HTTPS +17); each further node +100" },
    { name: 'tls', kind: 'boolean', description: 'mutual TLS with a throwaway CA and certificates in DIR/tls (admin.crt administers, client.crt does not)' },
  ],
  async run(ctx) {
    const nodes = ctx.integer('nodes') ?? 3;
    const basePort = ctx.integer('base-port') ?? 9860;
    if (nodes < 1 || nodes > 9) throw new UsageError(`--nodes must be between 1 and 9, got ${nodes}`, ctx.command);
    if (basePort < 1024 || basePort + 100 * (nodes - 1) + 35 > 65535) throw new UsageError(`--base-port ${basePort} leaves no room for ${nodes} nodes`, ctx.command);
    const dir = resolve(ctx.string('dir') ?? './data');
    try {
      return await runLocalCluster({ nodes, basePort, dir, io: ctx.io, tls: ctx.flag('tls') });
    } catch (err) {
      ctx.io.stderr(`scm cluster: ${(err as Error).message}\n`);
      return EXIT_FAILURE;
    }
  },
};

export const NODE_COMMANDS: readonly CommandSpec[] = [initCommand, bootstrapCommand, startCommand, clusterCommand];
