/**
 * The in-memory side of usage tracking: `record()` folds a call into its minute bucket (a Map
 * lookup, no I/O, no allocation for a bucket that exists), and the flush takes buckets out in
 * batches. A batch keeps its id and contents until the database accepted it, so a retry is
 * recognised (see usage-store.ts) and never counted twice.
 */
import { randomBytes } from "node:crypto";
import { OUTCOME_SET, type UsageOutcome } from "./usage-outcomes.js";

/** One call, as an adapter reports it after the response. */
export interface UsageRecord {
  keyId: string;
  orgId: string;
  /** HTTP method; stored upper-case. */
  method: string;
  /** The route template (`/v1/events/:id`), never the raw URL: at most 256 characters, no `?`. */
  endpoint: string;
  /** HTTP status, 100-599. */
  status: number;
  latencyMs: number;
  /** Units the call cost (its route's `cost`), for meters that bill by cost. @default 1 */
  units?: number;
  /**
   * What became of the call: `allowed` (served), or why it was refused once its key was
   * identified (`rate_limited`, `scope_denied`, `revoked`, …). @default 'allowed'
   */
  outcome?: UsageOutcome;
  /** When the call happened. @default now (the `clock` option) */
  at?: Date | number;
}

/** Calls of one key, method + endpoint, status class and outcome in one minute. */
export interface Bucket {
  keyId: string;
  orgId: string;
  method: string;
  endpoint: string;
  /** 1..5 for 1xx..5xx. */
  statusClass: number;
  outcome: UsageOutcome;
  /** Start of the minute, ms since the epoch. */
  minute: number;
  count: number;
  /** Units (costs) summed over the calls. */
  units: number;
  latencySum: number;
  latencyMax: number;
  /** Latest call time seen, ms since the epoch: feeds the key's `lastUsedAt`. */
  lastAt: number;
}

export interface UsageBatch {
  /** Unique across instances and restarts; the database remembers applied ones. */
  id: string;
  buckets: Bucket[];
  calls: number;
}

const MINUTE_MS = 60_000;
const MAX_ID = 128;
const MAX_METHOD = 16;
const MAX_ENDPOINT = 256;
/** Date's own range; anything else cannot be a time. */
const MAX_TIME = 8.64e15;

export class UsageRecorder {
  private live = new Map<string, Bucket>();
  /** Each key's most recent live bucket (cleared with `live`: a sealed bucket is never touched). */
  private lastOfKey = new Map<string, Bucket>();
  private liveCalls = 0;
  /** Taken out of `live`, not yet accepted by the database; oldest first. */
  readonly pending: UsageBatch[] = [];
  private pendingBuckets = 0;
  private pendingCalls = 0;
  private readonly instance = randomBytes(9).toString("base64url");
  private sequence = 0;
  dropped = 0;
  rejected = 0;

  constructor(
    private readonly maxBuckets: number,
    private readonly now: () => number,
  ) {}

  /**
   * Folds one call into its bucket. Never throws: malformed input is counted as rejected, a call
   * that needs a new bucket while the buffer is full is counted as dropped; both return false.
   */
  record(input: UsageRecord): boolean {
    if (typeof input !== "object" || input === null) {
      this.rejected++;
      return false;
    }
    const { keyId, orgId, endpoint, status, latencyMs, at } = input;
    const units = input.units ?? 1;
    const outcome = input.outcome ?? "allowed";
    let method = input.method;
    if (
      !isText(keyId, MAX_ID) ||
      !isText(orgId, MAX_ID) ||
      !isText(method, MAX_METHOD) ||
      !isText(endpoint, MAX_ENDPOINT) ||
      endpoint.includes("?") ||
      typeof status !== "number" ||
      !Number.isInteger(status) ||
      status < 100 ||
      status > 599 ||
      typeof latencyMs !== "number" ||
      !(latencyMs >= 0 && latencyMs < Number.POSITIVE_INFINITY) ||
      !(Number.isSafeInteger(units) && units >= 0) ||
      (outcome !== "allowed" && !OUTCOME_SET.has(outcome))
    ) {
      this.rejected++;
      return false;
    }
    let time: number;
    if (at === undefined) time = this.now();
    else if (typeof at === "number") time = at;
    else if (at instanceof Date) time = at.getTime();
    else time = Number.NaN;
    if (!(time >= 0 && time <= MAX_TIME)) {
      this.rejected++;
      return false;
    }
    method = method.toUpperCase();
    const statusClass = (status / 100) | 0;
    const minute = time - (time % MINUTE_MS);
    // NUL cannot occur in a field (isText refuses it; PostgreSQL text cannot hold it either), so
    // the joined key is unambiguous. It is exactly the table's primary key: one batch never holds
    // two rows for the same primary key (an upsert cannot touch a row twice in one statement).
    // A key's calls mostly land in the bucket of its previous call: found without building the id.
    const last = this.lastOfKey.get(keyId);
    let id: string | undefined;
    let bucket: Bucket | undefined;
    if (
      last !== undefined &&
      last.minute === minute &&
      last.statusClass === statusClass &&
      last.outcome === outcome &&
      last.method === method &&
      last.endpoint === endpoint
    ) {
      bucket = last;
    } else {
      id = `${keyId}\0${minute}\0${method}\0${endpoint}\0${statusClass}\0${outcome}`;
      bucket = this.live.get(id);
    }
    if (bucket !== undefined) {
      if (bucket !== last) this.lastOfKey.set(keyId, bucket);
      bucket.count++;
      bucket.units += units;
      bucket.latencySum += latencyMs;
      if (latencyMs > bucket.latencyMax) bucket.latencyMax = latencyMs;
      if (time > bucket.lastAt) bucket.lastAt = time;
    } else {
      if (this.live.size + this.pendingBuckets >= this.maxBuckets) {
        this.dropped++;
        return false;
      }
      const created: Bucket = {
        keyId,
        orgId,
        method,
        endpoint,
        statusClass,
        outcome,
        minute,
        count: 1,
        units,
        latencySum: latencyMs,
        latencyMax: latencyMs,
        lastAt: time,
      };
      // Reached only through the lookup above, which built the id.
      this.live.set(id as string, created);
      this.lastOfKey.set(keyId, created);
    }
    this.liveCalls++;
    return true;
  }

  /** Buckets waiting, whether for the next flush or for a retry. */
  get bufferedBuckets(): number {
    return this.live.size + this.pendingBuckets;
  }

  get bufferedCalls(): number {
    return this.liveCalls + this.pendingCalls;
  }

  get liveBuckets(): number {
    return this.live.size;
  }

  /** Moves every live bucket into pending batches of at most `batchSize` buckets. */
  seal(batchSize: number): void {
    if (this.live.size === 0) return;
    let buckets: Bucket[] = [];
    let calls = 0;
    for (const bucket of this.live.values()) {
      buckets.push(bucket);
      calls += bucket.count;
      if (buckets.length === batchSize) {
        this.enqueue(buckets, calls);
        buckets = [];
        calls = 0;
      }
    }
    if (buckets.length > 0) this.enqueue(buckets, calls);
    this.live = new Map();
    this.lastOfKey = new Map();
    this.liveCalls = 0;
  }

  /** The oldest pending batch was written (or given up on): forget it. */
  settle(batch: UsageBatch): void {
    const index = this.pending.indexOf(batch);
    if (index < 0) return;
    this.pending.splice(index, 1);
    this.pendingBuckets -= batch.buckets.length;
    this.pendingCalls -= batch.calls;
  }

  private enqueue(buckets: Bucket[], calls: number): void {
    this.sequence++;
    this.pending.push({ id: `${this.instance}.${this.sequence}`, buckets, calls });
    this.pendingBuckets += buckets.length;
    this.pendingCalls += calls;
  }
}

function isText(value: unknown, max: number): value is string {
  return typeof value === "string" && value.length > 0 && value.length <= max && !value.includes("\0");
}
