/**
 * Every window and the quota of one decision in one Lua script, on Redis, Valkey or Redis Cluster.
 *
 * Why our own script instead of rate-limiter-flexible's RateLimiterRedis: the library runs one
 * script per window, so the windows of a request were counted one by one and a refusal by one
 * had to be given back to the others afterwards (another round trip, and a moment where a request
 * is counted that will be refused); it has no sliding window or GCRA either. Here one script
 * reads every counter of the decision, decides each request of a batch in order against all of
 * them, and writes only what it admitted: atomic, one round trip, nothing to give back.
 *
 * Cluster: every counter of a key carries its org's hash tag (`{org}`), so the windows of a key,
 * the org's pooled windows and the quota are in one slot, on one node; the script declares every
 * key it touches in KEYS (as stores that enforce declared keys require).
 *
 * Time: fixed windows run on the store's TTLs (anchored at their first request, as the library's
 * are). Sliding windows and GCRA need a clock: the store's own (`TIME`, so instances with skewed
 * clocks agree) unless the app injected a clock (tests), which is then sent with the call. Their
 * state is kept one window longer than it matters (a stale one reads as empty), so that an
 * injected clock that runs ahead of the store's cannot expire it early.
 */
import { createHash } from "node:crypto";
import type { Socket } from "node:net";
import { type Cluster, Command, type Redis } from "ioredis";

export type Algorithm = "fixed" | "sliding" | "gcra";

/** One window as the script sees it. */
export interface SharedWindow {
  algorithm: Algorithm;
  limit: number;
  ms: number;
  burst: number;
}

/** Per window in a reply: remaining, ms until whole (or until the refused request fits), ms until one unit fits, refused. */
export const WINDOW_FIELDS = 4;
/** Per request: refused (0/1), then the windows, then the quota (remaining, refused). */
export function replyWidth(windows: number, quota: boolean): number {
  return 1 + windows * WINDOW_FIELDS + (quota ? 2 : 0);
}

const ALGORITHM_CODE: Record<Algorithm, string> = { fixed: "1", sliding: "2", gcra: "3" };

/**
 * ARGV: now (ms; 0 = the server's clock), window count, quota (0/1), then per window: algorithm
 * (1 fixed, 2 sliding, 3 gcra), limit, ms, burst; then the quota's limit and TTL (ms); then the
 * costs of the requests, in order (one negative cost: give that much back to every counter).
 */
export const DECIDE_SCRIPT = `
local now = tonumber(ARGV[1])
if now == 0 then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local n = tonumber(ARGV[2])
local hasQuota = ARGV[3] == '1'
local eps = 1e-6
local a = 4
local w = {}
for i = 1, n do
  local s = { alg = tonumber(ARGV[a]), limit = tonumber(ARGV[a + 1]), ms = tonumber(ARGV[a + 2]), burst = tonumber(ARGV[a + 3]), dirty = false }
  a = a + 4
  local key = KEYS[i]
  if s.alg == 1 then
    local ttl = redis.call('PTTL', key)
    if ttl > 0 then
      s.count = tonumber(redis.call('GET', key)) or 0
      s.ttl = ttl
      s.fresh = false
    else
      s.count = 0
      s.ttl = s.ms
      s.fresh = true
    end
  elseif s.alg == 2 then
    local v = redis.call('HMGET', key, 'w', 'c', 'p')
    local index = math.floor(now / s.ms)
    local stored = tonumber(v[1])
    s.index = index
    if stored == index then
      s.cur = tonumber(v[2]) or 0
      s.prev = tonumber(v[3]) or 0
    elseif stored == index - 1 then
      s.cur = 0
      s.prev = tonumber(v[2]) or 0
    else
      s.cur = 0
      s.prev = 0
    end
  else
    s.interval = s.ms / s.limit
    s.tolerance = s.burst * s.interval
    local tat = tonumber(redis.call('GET', key)) or now
    if tat < now then tat = now end
    s.tat = tat
  end
  w[i] = s
end
local q = nil
if hasQuota then
  local key = KEYS[n + 1]
  q = { limit = tonumber(ARGV[a]), ttl = tonumber(ARGV[a + 1]), dirty = false }
  a = a + 2
  q.pttl = redis.call('PTTL', key)
  if q.pttl > 0 then q.count = tonumber(redis.call('GET', key)) or 0 else q.count = 0 end
end

local function floorRoom(room)
  local r = math.floor(room + eps)
  if r < 0 then return 0 end
  return r
end
local function estimate(s)
  return s.prev * (s.ms - (now - s.index * s.ms)) / s.ms + s.cur
end
local function slidingReset(s)
  if s.cur > 0 then return (s.index + 2) * s.ms - now end
  if s.prev > 0 then return (s.index + 1) * s.ms - now end
  return 0
end
local function slidingWait(s, cost)
  if cost > s.limit then return slidingReset(s) end
  local start = s.index * s.ms
  local room = s.limit - cost - s.cur
  if room >= 0 and s.prev > 0 then
    local e = s.ms * (1 - room / s.prev)
    if e < s.ms then
      local t = start + math.ceil(e) - now
      if t < 0 then t = 0 end
      return t
    end
  end
  if s.cur <= 0 then return start + s.ms - now end
  local e = s.ms * (1 - (s.limit - cost) / s.cur)
  if e < 0 then e = 0 end
  return start + s.ms + math.ceil(e) - now
end
local function gcraRemaining(s, tat)
  local r = floorRoom((now + s.tolerance - tat) / s.interval)
  if r > s.burst then return s.burst end
  return r
end
local function gcraWait(s, cost)
  if cost > s.burst then return math.ceil(s.tat - now) end
  local t = math.ceil(s.tat + cost * s.interval - s.tolerance - now)
  if t < 0 then t = 0 end
  return t
end

local out = {}
local first = tonumber(ARGV[a])
if first ~= nil and first < 0 then
  local cost = -first
  for i = 1, n do
    local s = w[i]
    if s.alg == 1 then
      if not s.fresh then s.count = math.max(0, s.count - cost); s.dirty = true end
    elseif s.alg == 2 then
      s.cur = math.max(0, s.cur - cost); s.dirty = true
    else
      s.tat = math.max(now, s.tat - cost * s.interval); s.dirty = true
    end
  end
  if q and q.pttl > 0 then q.count = math.max(0, q.count - cost); q.dirty = true end
  out[1] = 0
else
  for c = a, #ARGV do
    local cost = tonumber(ARGV[c])
    local refused = false
    for i = 1, n do
      local s = w[i]
      if s.alg == 1 then s.ok = s.count + cost <= s.limit
      elseif s.alg == 2 then s.ok = estimate(s) + cost <= s.limit + eps
      else s.ok = (s.tat + cost * s.interval - now) / s.interval <= s.burst + eps end
      if not s.ok then refused = true end
    end
    local qok = true
    if q then
      qok = q.count + cost <= q.limit
      if not qok then refused = true end
    end
    if not refused and cost > 0 then
      for i = 1, n do
        local s = w[i]
        s.dirty = true
        if s.alg == 1 then s.count = s.count + cost
        elseif s.alg == 2 then s.cur = s.cur + cost
        else s.tat = s.tat + cost * s.interval end
      end
      if q then q.count = q.count + cost; q.dirty = true end
    end
    out[#out + 1] = refused and 1 or 0
    for i = 1, n do
      local s = w[i]
      local remaining, reset, nextUnit
      if s.alg == 1 then
        remaining = s.limit - s.count
        if remaining < 0 then remaining = 0 end
        reset = s.ttl
        if remaining >= 1 then nextUnit = 0 else nextUnit = s.ttl end
      elseif s.alg == 2 then
        remaining = floorRoom(s.limit - estimate(s))
        if s.ok then reset = slidingReset(s) else reset = slidingWait(s, cost) end
        if remaining >= 1 then nextUnit = 0 else nextUnit = slidingWait(s, 1) end
      else
        remaining = gcraRemaining(s, s.tat)
        if s.ok then reset = math.ceil(s.tat - now) else reset = gcraWait(s, cost) end
        if remaining >= 1 then nextUnit = 0 else nextUnit = gcraWait(s, 1) end
      end
      out[#out + 1] = math.floor(remaining)
      out[#out + 1] = math.ceil(reset)
      out[#out + 1] = math.ceil(nextUnit)
      out[#out + 1] = s.ok and 0 or 1
    end
    if q then
      local remaining = q.limit - q.count
      if remaining < 0 then remaining = 0 end
      out[#out + 1] = remaining
      out[#out + 1] = qok and 0 or 1
    end
  end
end

for i = 1, n do
  local s = w[i]
  if s.dirty then
    local key = KEYS[i]
    if s.alg == 1 then
      if s.fresh then redis.call('SET', key, s.count, 'PX', s.ms) else redis.call('SET', key, s.count, 'KEEPTTL') end
    elseif s.alg == 2 then
      redis.call('HSET', key, 'w', s.index, 'c', s.cur, 'p', s.prev)
      redis.call('PEXPIRE', key, math.max(1, (s.index + 2) * s.ms - now) + s.ms)
    else
      local ttl = math.ceil(s.tat - now)
      if ttl > 0 then
        redis.call('SET', key, string.format('%.17g', s.tat), 'PX', ttl + s.ms)
      else
        redis.call('DEL', key)
      end
    end
  end
end
if q and q.dirty then
  local key = KEYS[n + 1]
  if q.pttl > 0 then redis.call('SET', key, q.count, 'KEEPTTL') else redis.call('SET', key, q.count, 'PX', q.ttl) end
end
return out
`;

type Client = Redis | Cluster;

const DECIDE_SHA = createHash("sha1").update(DECIDE_SCRIPT).digest("hex");

function isNoScript(error: unknown): boolean {
  return error instanceof Error && error.message.startsWith("NOSCRIPT");
}

/** Requests waiting for the next call of one decision (the same keys and limits). */
interface Waiting {
  cost: number;
  resolve(reply: Reply): void;
}
interface Queue {
  waiting: Waiting[];
}

/** One request's part of a reply (its `replyWidth` numbers from `offset`), or the failure. */
export type Reply = { values: readonly number[]; offset: number } | { failed: unknown };

/** Requests of one batch at most: the rest go with the next call. */
const MAX_BATCH = 1_000;

export class SharedStore {
  private readonly inFlight = new Map<string, Queue>();
  /** The client's socket while it is corked, until the end of this event-loop turn's I/O. */
  private corked: Socket | null = null;
  private readonly uncork = (): void => {
    this.corked?.uncork();
    this.corked = null;
  };
  /** The client's own key prefix (ioredis `keyPrefix`), applied to the script's keys as ioredis would. */
  private readonly commandOptions: { keyPrefix?: string };

  constructor(
    private readonly client: Client,
    /** The app's clock when it injected one, else null (then the store's clock decides). */
    private readonly clock: (() => number) | null,
  ) {
    const keyPrefix = client.options.keyPrefix;
    this.commandOptions = keyPrefix ? { keyPrefix } : {};
  }

  /**
   * Loads the script on every master ahead of the first request (which would otherwise pay an
   * extra round trip for NOSCRIPT); a node that lacks it later (a promoted replica) gets it then.
   */
  async preload(client: Client): Promise<void> {
    const nodes =
      "isCluster" in client && client.isCluster ? (client as Cluster).nodes("master") : [client as Redis];
    await Promise.all(nodes.map((node) => node.script("LOAD", DECIDE_SCRIPT).catch(() => {})));
  }

  /** The arguments before the costs, for a decision's windows and quota. */
  static head(windows: readonly SharedWindow[], quota: { limit: number; ttlMs: number } | null): string[] {
    const args = ["0", String(windows.length), quota === null ? "0" : "1"];
    for (const window of windows) {
      args.push(
        ALGORITHM_CODE[window.algorithm],
        String(window.limit),
        String(window.ms),
        String(window.burst),
      );
    }
    if (quota !== null) args.push(String(quota.limit), String(quota.ttlMs));
    return args;
  }

  /**
   * Decides `cost` for one request, with at most one call in flight per decision (`flight`):
   * requests that arrive meanwhile go out together with the next call, each decided in order, as
   * if they had been sent one by one. A quiet key goes out at once; a hot one costs one call per
   * round trip instead of one per request.
   */
  decide(flight: string, keys: readonly string[], head: readonly string[], cost: number): Promise<Reply> {
    const queue = this.inFlight.get(flight);
    if (queue !== undefined) {
      return new Promise((resolve) => {
        queue.waiting.push({ cost, resolve });
      });
    }
    const started: Queue = { waiting: [] };
    this.inFlight.set(flight, started);
    // The first request of a flight is the call's only cost: its reply is the call's own.
    return this.call(keys, head, [String(cost)]).then(
      (values) => {
        this.sendWaiting(flight, started, keys, head);
        return { values, offset: 0 };
      },
      (failed: unknown) => {
        this.sendWaiting(flight, started, keys, head);
        return { failed };
      },
    );
  }

  /** The next call of a flight, for the requests that arrived during the last one (or its end). */
  private sendWaiting(flight: string, queue: Queue, keys: readonly string[], head: readonly string[]): void {
    if (queue.waiting.length === 0) {
      this.inFlight.delete(flight);
      return;
    }
    this.send(flight, queue, keys, head, queue.waiting.splice(0, MAX_BATCH));
  }

  /** Reads every counter without consuming (a cost of 0). */
  peek(keys: readonly string[], head: readonly string[]): Promise<Reply> {
    return this.call(keys, head, ["0"]).then(
      (values) => ({ values, offset: 0 }),
      (failed: unknown) => ({ failed }),
    );
  }

  /** Gives `cost` back to every counter of a decision. */
  async giveBack(keys: readonly string[], head: readonly string[], cost: number): Promise<void> {
    await this.call(keys, head, [String(-cost)]);
  }

  private send(
    flight: string,
    queue: Queue,
    keys: readonly string[],
    head: readonly string[],
    batch: Waiting[],
  ): void {
    const costs = batch.map((waiting) => String(waiting.cost));
    const settle = (reply: { values: readonly number[] } | { failed: unknown }) => {
      const per = "values" in reply ? reply.values.length / batch.length : 0;
      for (let i = 0; i < batch.length; i++) {
        const waiting = batch[i] as Waiting;
        waiting.resolve("values" in reply ? { values: reply.values, offset: i * per } : reply);
      }
      this.sendWaiting(flight, queue, keys, head);
    };
    this.call(keys, head, costs).then(
      (values) => settle({ values }),
      (failed: unknown) => settle({ failed }),
    );
  }

  /**
   * The calls of every request read in this turn's I/O go to Redis in one write: the client's
   * socket is corked at the first and uncorked in this turn's check phase (`setImmediate`), before
   * the loop waits again. Nothing waits a turn and no reply is reordered; a write of its own per
   * request cost this server ≈ 3 µs per request (bench/RESULTS.md). A cluster client writes to a
   * socket per node and is left as it is.
   */
  private coalesceWrites(): void {
    if (this.corked !== null) return;
    const stream = (this.client as { stream?: Socket }).stream;
    if (typeof stream?.cork !== "function") return;
    this.corked = stream;
    stream.cork();
    setImmediate(this.uncork);
  }

  /**
   * One `EVALSHA`, handed to the client as a command of its own: not through ioredis's generated
   * script method, whose auto-pipelining builds a pipeline object per batch (measured: 8.7 against
   * 6.3 µs of CPU per call, bench/RESULTS.md); the calls of one turn share a write anyway
   * (coalesceWrites). A node without the script (flushed, or a promoted replica) answers
   * NOSCRIPT without running anything, and gets the script's text once.
   */
  private call(
    keys: readonly string[],
    head: readonly string[],
    costs: readonly string[],
  ): Promise<number[]> {
    const args: string[] = [DECIDE_SHA, String(keys.length), ...keys, ...head, ...costs];
    if (this.clock !== null) args[2 + keys.length] = String(Math.floor(this.clock()));
    this.coalesceWrites();
    const sent = this.client.sendCommand(new Command("evalsha", args, this.commandOptions)) as Promise<
      number[]
    >;
    return sent.catch((error: unknown) => {
      if (!isNoScript(error)) throw error;
      args[0] = DECIDE_SCRIPT;
      return this.client.sendCommand(new Command("eval", args, this.commandOptions)) as Promise<number[]>;
    });
  }
}
