// Setting a node up before its first start, as Ozone's `ozone scm --init` and `--bootstrap` do:
// `initNode` creates VERSION (a new clusterID) and the Raft group holding only this node;
// `bootstrapNode` writes VERSION with the clusterID of the running quorum, which `scm start` then
// joins. The CLI (src/cli) calls these; asking the running SCMs is left to the caller (it uses the
// client), so the server does not depend on src/client here.
import { mkdirSync } from 'node:fs';
import { RaftStorage } from '../storage/index.js';
import { requireSelf, type ScmConfig } from './config.js';
import { createVersionInfo, readVersionFileIfExists, writeVersionFile } from './version-file.js';
import { bootstrapConfigEntry, raftGroupDir } from './scm-node.js';

export interface NodeSetupResult {
  readonly clusterId: string;
  /** False when VERSION already existed (nothing was changed). */
  readonly created: boolean;
}

/**
 * Asks running SCMs, by their client addresses, for the cluster's id; resolves with the clusterID
 * and the address that answered.
 */
export type ClusterIdLookup = (addresses: readonly string[]) => Promise<{ readonly clusterId: string; readonly address: string }>;

/** Creates VERSION (new clusterID unless given) and the Raft group holding only this node. */
export async function initNode(config: ScmConfig, clusterId?: string): Promise<NodeSetupResult> {
  const self = requireSelf(config);
  const existing = readVersionFileIfExists(config.dbDir);
  if (existing !== null) return { clusterId: existing.clusterId, created: false };
  const info = createVersionInfo(clusterId !== undefined ? { clusterId } : {});
  // The group (raft-meta.conf) first: a VERSION without it would look initialised but could not lead.
  const groupDir = raftGroupDir(config, info.clusterId);
  mkdirSync(groupDir, { recursive: true });
  const storage = RaftStorage.open(groupDir);
  try {
    if (storage.readConf() === undefined && storage.lastIndex() === 0) await storage.saveConf(bootstrapConfigEntry(self));
  } finally {
    await storage.close();
  }
  await writeVersionFile(config.dbDir, info);
  return { clusterId: info.clusterId, created: true };
}

/** Asks the running quorum (through `lookup`) for its clusterID and writes VERSION with it. */
export async function bootstrapNode(config: ScmConfig, lookup: ClusterIdLookup): Promise<NodeSetupResult> {
  const self = requireSelf(config);
  const existing = readVersionFileIfExists(config.dbDir);
  if (existing !== null) return { clusterId: existing.clusterId, created: false };
  if (config.primordialNodeId === self.nodeId) {
    throw new Error(`${self.nodeId} is the primordial SCM (ozone.scm.primordial.node.id): run \`scm init\` on it, not bootstrap`);
  }
  const others = config.peers.filter((p) => p.nodeId !== self.nodeId).map((p) => p.clientAddress);
  if (others.length === 0) throw new Error(`bootstrap needs other SCMs in ozone.scm.nodes.${config.serviceId}; only ${self.nodeId} is configured`);
  try {
    const answer = await lookup(others);
    if (answer.clusterId === '') throw new Error(`the SCM at ${answer.address} reported no clusterID`);
    await writeVersionFile(config.dbDir, createVersionInfo({ clusterId: answer.clusterId }));
    return { clusterId: answer.clusterId, created: true };
  } catch (err) {
    throw new Error(`cannot bootstrap ${self.nodeId}: no running SCM answered at ${others.join(', ')} (${(err as Error).message})`, { cause: err });
  }
}
