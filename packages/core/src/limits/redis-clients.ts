/**
 * The Redis clients limits count with (one server or a cluster): no command ever sent twice.
 * Flux Keys' own clients are created so; a client the app passes that is not gets a duplicate that
 * is (closed with the limits).
 */
import type { Cluster, Redis } from "ioredis";

export type Client = Redis | Cluster;

function isCluster(client: Client): client is Cluster {
  return (client as Cluster).isCluster === true;
}

/**
 * Safe for counting: no command ever sent twice (a lost reply is not resent after a reconnect; on a
 * cluster, not retried on another node after a failover either). Auto-pipelining is not needed:
 * the decision script is sent as a command of its own (limits/shared-store.ts).
 */
export function safeForCounting(client: Client): boolean {
  if (isCluster(client)) {
    const options = client.options;
    return (
      options.retryDelayOnFailover === 0 && options.redisOptions?.autoResendUnfulfilledCommands === false
    );
  }
  return client.options.autoResendUnfulfilledCommands === false;
}

export function duplicateForCounting(client: Client): Client {
  const fastFail = {
    autoResendUnfulfilledCommands: false,
    enableOfflineQueue: false,
    commandTimeout: 1_000,
    maxRetriesPerRequest: 1,
  };
  if (isCluster(client))
    return client.duplicate(undefined, countingClusterOptions(client.options.redisOptions));
  return client.duplicate({ ...fastFail, enableAutoPipelining: true, lazyConnect: false });
}

/**
 * Cluster options for counting: a command is never retried where it may have run (a closed
 * connection during a failover fails it, and the store policy answers), and nothing waits for a
 * cluster that is down: the policy answers at once. Redirections (MOVED, ASK, TRYAGAIN) are
 * followed: a redirected script has not run.
 */
export function countingClusterOptions(redisOptions: Record<string, unknown> = {}) {
  return {
    enableAutoPipelining: true,
    enableOfflineQueue: false,
    retryDelayOnFailover: 0,
    retryDelayOnClusterDown: 0,
    slotsRefreshTimeout: 1_000,
    slotsRefreshInterval: 2_000,
    lazyConnect: false,
    redisOptions: {
      ...redisOptions,
      autoResendUnfulfilledCommands: false,
      enableOfflineQueue: false,
      commandTimeout: 1_000,
      connectTimeout: 2_000,
      maxRetriesPerRequest: 1,
    },
  };
}
