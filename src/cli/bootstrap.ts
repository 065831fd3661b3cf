// Bootstrapping from the CLI (`scm bootstrap`, `scm start` with ENSURE_SCM_BOOTSTRAPPED, `scm
// cluster`): the server's node set-up, asking the running SCMs through the client.
import { ScmClient } from '../client/scm-client.js';
import type { ScmConfig } from '../server/config.js';
import { bootstrapNode, type NodeSetupResult } from '../server/node-setup.js';

/** bootstrapNode, asking the other configured SCMs' client ports for at most `timeoutMs`. */
export function bootstrapFromRunningScms(config: ScmConfig, timeoutMs: number): Promise<NodeSetupResult> {
  return bootstrapNode(config, async (addresses) => {
    const client = new ScmClient({ addresses, deadlineMs: timeoutMs });
    try {
      const info = await client.getClusterInfo();
      return { clusterId: info.clusterId, address: client.currentAddress };
    } finally {
      client.close();
    }
  });
}
