// A checkpoint kept as a file (`scm admin snapshot save`, `scm restore`): the tar.gz exactly as the
// InterSCM service streams it (a LevelDB checkpoint of scm.db plus MANIFEST.json). Verified the
// way a follower verifies a download before installing it: safe extraction against the manifest
// (names, sizes, SHA-256), the manifest's cluster id, #TRANSACTIONINFO equal to the manifest's
// term and index, and a Raft configuration from at or before that index.
import { rm } from 'node:fs/promises';
import { extractCheckpointTarball, type Manifest } from '../snapshot/index.js';
import { compareTermIndex, formatTransactionInfo, readConfigurationAt, readTransactionInfoAt, type AppliedConfiguration, type TermIndex } from '../statemachine/index.js';

export interface VerifiedCheckpoint {
  /** The extracted LevelDB directory. */
  readonly dir: string;
  readonly manifest: Manifest;
  readonly clusterId: string;
  readonly termIndex: TermIndex;
  /** The configuration in force at the checkpoint's index. */
  readonly configuration: AppliedConfiguration;
}

/**
 * Extracts `file` into `destDir` (which must not exist) and checks it. On any failure `destDir` is
 * removed and the error names the file and what is wrong with it.
 */
export async function extractVerifiedCheckpoint(file: string, destDir: string, expectedClusterId?: string): Promise<VerifiedCheckpoint> {
  let extracted: { manifest: Manifest } | undefined;
  try {
    extracted = await extractCheckpointTarball(file, destDir);
    const { manifest } = extracted;
    if (expectedClusterId !== undefined && manifest.clusterId !== expectedClusterId) {
      throw new Error(`it is a checkpoint of cluster ${manifest.clusterId}, not of ${expectedClusterId}`);
    }
    const termIndex = await readTransactionInfoAt(destDir);
    if (compareTermIndex(termIndex, manifest.termIndex) !== 0) {
      throw new Error(`its #TRANSACTIONINFO is ${formatTransactionInfo(termIndex)} but its manifest says ${formatTransactionInfo(manifest.termIndex)}`);
    }
    const configuration = await readConfigurationAt(destDir);
    if (configuration === undefined) throw new Error(`it holds no Raft configuration (meta/raftConfiguration)`);
    if (configuration.index > termIndex.index) {
      throw new Error(`it holds a Raft configuration from index ${configuration.index}, after its own index ${termIndex.index}`);
    }
    return { dir: destDir, manifest, clusterId: manifest.clusterId, termIndex, configuration };
  } catch (err) {
    await rm(destDir, { recursive: true, force: true });
    throw new Error(`${file} is not a usable SCM checkpoint: ${(err as Error).message}`, { cause: err });
  }
}
