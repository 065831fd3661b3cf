// Bootstrapping from the CLI (`scm bootstrap`, `scm start` with ENSURE_SCM_BOOTSTRAPPED, `scm
// cluster`): the server's node set-up, asking the running SCMs through the client.
import { ScmClient } from '../client/scm-client.js';
import type { ScmConfig } from '../server/config.js';
import { bootstrapNode, type NodeSetupResult } from '../server/node-setup.js';
import { nodeChannel } from '../server/client-tls.js';

/**
 * bootstrapNode, asking the other configured SCMs' client ports for at most `timeoutMs`; an abort
 * ends the wait at once (`scm cluster` stopped while starting).
 */
export function bootstrapFromRunningScms(config: ScmConfig, timeoutMs: number, signal?: AbortSignal): Promise<NodeSetupResult> {
  // With TLS the node asks as itself: its certificate is checked before it waits for anyone.
  const channel = nodeChannel(config);
  return bootstrapNode(config, async (addresses) => {
    signal?.throwIfAborted();
    const client = new ScmClient({ addresses, deadlineMs: timeoutMs, ...(channel !== undefined ? { channel } : {}) });
    const abort = (): void => client.close();
    signal?.addEventListener('abort', abort, { once: true });
    try {
      const info = await client.getClusterInfo();
      return { clusterId: info.clusterId, address: client.currentAddress };
    } finally {
      signal?.removeEventListener('abort', abort);
      client.close();
    }
  });
}
