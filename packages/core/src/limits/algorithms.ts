/**
 * The window counters of the memory store (and of the per-process insurance that counts while
 * Redis is down): fixed, sliding and GCRA, the same arithmetic as the shared-store script
 * (limits/shared-store.ts) so that a window counts the same wherever it lives. rate-limiter-flexible
 * has no sliding window or GCRA; its RateLimiterMemory has a fixed window, but keeps a timer per key
 * (about 1 KB a window per key) and answers through promises, so fixed windows are counted here too:
 * a slot per key in a Map, expired slots swept as the map is written, and a synchronous `take()`
 * for the decision code (the promise methods remain for the shape rate-limiter-flexible shares).
 *
 * - Fixed (window W, limit L): a window starts at a key's first request and lasts W (as the
 *   library's and the store's TTL-anchored windows do); at most L units in it. Any span of W may
 *   see up to 2L across a window edge.
 * - Sliding (window W, limit L): windows aligned to multiples of W; a request at `e` ms into the
 *   current window sees `previous × (W − e) / W + current` and is admitted while that plus its
 *   cost stays within L. Bound: within one aligned window at most L; any span of s ≤ W ms at most
 *   L × (1 + s / W) (a fixed window allows 2L for any s > 0, at its edge).
 * - GCRA (window W, limit L, burst B): one unit every T = W / L ms, B units at once on a rested
 *   key; the state is the theoretical arrival time (TAT). Bound: any span of s ms at most
 *   B + s / T units.
 *
 * Answers are rate-limiter-flexible `RateLimiterRes` (resolved when admitted, rejected when
 * refused), so the decision code treats every window alike: `remainingPoints` as the RateLimit
 * field's `r`, `msBeforeNext` as its `t` (until the window is whole again; for a refusal, until
 * the refused request would be admitted).
 */
import { RateLimiterRes } from "rate-limiter-flexible";

/** What the decision code needs of a window's counter (RateLimiterMemory has the same shape). */
export interface WindowCounter {
  consume(key: string, cost: number, options?: { customDuration: number }): Promise<RateLimiterRes>;
  reward(key: string, cost: number, options?: { customDuration: number }): Promise<unknown>;
  get(key: string): Promise<RateLimiterRes | null>;
}

/**
 * Floating error allowed, in units, when a cost fits exactly: GCRA's T is rarely a whole number
 * of ms, and a TAT near 2e12 ms carries errors near 1e-4 ms.
 */
export const EPSILON = 1e-6;

interface Slot {
  /** Sliding: window index; GCRA: unused. */
  index: number;
  /** Sliding: current window count; GCRA: TAT (ms). */
  a: number;
  /** Sliding: previous window count. */
  b: number;
  /** When the slot holds nothing any more (ms on the counter's clock). */
  expiresAt: number;
}

const SWEEP_EVERY = 10_000;

export abstract class MemoryCounter implements WindowCounter {
  protected readonly slots = new Map<string, Slot>();
  private writes = 0;

  constructor(
    protected readonly limit: number,
    protected readonly ms: number,
    protected readonly now: () => number,
  ) {}

  consume(key: string, cost: number): Promise<RateLimiterRes> {
    const res = this.take(key, cost);
    return res.consumedPoints < 0 ? Promise.reject(res) : Promise.resolve(res);
  }

  /**
   * The decision at `at` (the caller's clock reading for this request, else read here),
   * synchronously: admitted (counted), or refused (`consumedPoints` -1, nothing counted).
   */
  take(key: string, cost: number, at: number = this.now()): RateLimiterRes {
    const held = this.slots.get(key);
    const slot = held === undefined || held.expiresAt <= at ? this.fresh(at) : held;
    const res = this.decide(slot, cost, at);
    if (res.consumedPoints >= 0) this.store(key, slot, at, slot !== held);
    return res;
  }

  reward(key: string, cost: number): Promise<unknown> {
    const at = this.now();
    const slot = this.slot(key, at);
    this.giveBack(slot, cost, at);
    this.store(key, slot, at, true);
    return Promise.resolve();
  }

  get(key: string): Promise<RateLimiterRes | null> {
    const at = this.now();
    return Promise.resolve(this.decide(this.slot(key, at), 0, at));
  }

  /** Decides `cost` on the slot (applying it when admitted); a refusal has consumedPoints -1. */
  protected abstract decide(slot: Slot, cost: number, at: number): RateLimiterRes;
  protected abstract giveBack(slot: Slot, cost: number, at: number): void;
  protected abstract fresh(at: number): Slot;
  protected abstract expiry(slot: Slot, at: number): number;

  private slot(key: string, at: number): Slot {
    const slot = this.slots.get(key);
    return slot === undefined || slot.expiresAt <= at ? this.fresh(at) : slot;
  }

  /** Keeps the slot (`added`: not in the map yet); every SWEEP_EVERY new slots, drops expired ones. */
  private store(key: string, slot: Slot, at: number, added: boolean): void {
    slot.expiresAt = this.expiry(slot, at);
    if (!added) return;
    this.slots.set(key, slot);
    if (++this.writes % SWEEP_EVERY !== 0) return;
    for (const [name, held] of this.slots) if (held.expiresAt <= at) this.slots.delete(name);
  }

  /** Slots held (for tests and the memory benchmark). */
  get size(): number {
    return this.slots.size;
  }
}

/** Fixed window, anchored at the key's first request (the slot's `expiresAt` is the window's end). */
export class FixedCounter extends MemoryCounter {
  protected fresh(at: number): Slot {
    return { index: 0, a: 0, b: 0, expiresAt: at + this.ms };
  }

  protected decide(slot: Slot, cost: number, at: number): RateLimiterRes {
    const left = slot.expiresAt - at;
    if (slot.a + cost > this.limit)
      return new RateLimiterRes(Math.max(0, this.limit - slot.a), left, -1, false);
    slot.a += cost;
    return new RateLimiterRes(this.limit - slot.a, left, slot.a, slot.a === cost);
  }

  protected giveBack(slot: Slot, cost: number, _at: number): void {
    slot.a = Math.max(0, slot.a - cost);
  }

  protected expiry(slot: Slot, _at: number): number {
    return slot.expiresAt;
  }
}

/** Sliding window: the previous window's count, weighted by how much of it is still in view. */
export class SlidingCounter extends MemoryCounter {
  protected fresh(at: number): Slot {
    return { index: Math.floor(at / this.ms), a: 0, b: 0, expiresAt: 0 };
  }

  protected decide(slot: Slot, cost: number, at: number): RateLimiterRes {
    roll(slot, at, this.ms);
    const estimate = slidingEstimate(slot, this.ms, at);
    if (estimate + cost > this.limit + EPSILON) {
      const wait = slidingWait(slot, this.ms, this.limit, cost, at);
      return new RateLimiterRes(remainingOf(this.limit - estimate), wait, -1, false);
    }
    slot.a += cost;
    const remaining = remainingOf(this.limit - estimate - cost);
    return new RateLimiterRes(remaining, slidingReset(slot, this.ms, at), cost, false);
  }

  protected giveBack(slot: Slot, cost: number, at: number): void {
    roll(slot, at, this.ms);
    slot.a = Math.max(0, slot.a - cost);
  }

  protected expiry(slot: Slot, _at: number): number {
    return (slot.index + 2) * this.ms;
  }
}

/** GCRA: a unit every `ms / limit` ms, `burst` at once. */
export class GcraCounter extends MemoryCounter {
  private readonly interval: number;
  private readonly tolerance: number;

  constructor(
    limit: number,
    ms: number,
    private readonly burst: number,
    now: () => number,
  ) {
    super(limit, ms, now);
    this.interval = ms / limit;
    this.tolerance = burst * this.interval;
  }

  protected fresh(at: number): Slot {
    return { index: 0, a: at, b: 0, expiresAt: 0 };
  }

  protected decide(slot: Slot, cost: number, at: number): RateLimiterRes {
    const tat = Math.max(slot.a, at);
    const next = tat + cost * this.interval;
    if ((next - at) / this.interval > this.burst + EPSILON) {
      const wait = cost > this.burst ? Math.ceil(tat - at) : Math.ceil(next - this.tolerance - at);
      return new RateLimiterRes(this.remaining(tat, at), wait, -1, false);
    }
    slot.a = next;
    return new RateLimiterRes(this.remaining(next, at), Math.ceil(next - at), cost, false);
  }

  protected giveBack(slot: Slot, cost: number, at: number): void {
    slot.a = Math.max(at, slot.a - cost * this.interval);
  }

  protected expiry(slot: Slot, at: number): number {
    return Math.max(slot.a, at + 1);
  }

  private remaining(tat: number, at: number): number {
    return Math.min(this.burst, remainingOf((at + this.tolerance - tat) / this.interval));
  }
}

function remainingOf(room: number): number {
  return Math.max(0, Math.floor(room + EPSILON));
}

/** A slot of an earlier window: the current count becomes the previous one, or both lapse. */
function roll(slot: Slot, at: number, ms: number): void {
  const index = Math.floor(at / ms);
  if (slot.index === index) return;
  slot.b = slot.index === index - 1 ? slot.a : 0;
  slot.a = 0;
  slot.index = index;
}

/** The weighted count a request sees (the slot rolled to `at`'s window). */
function slidingEstimate(slot: Slot, ms: number, at: number): number {
  const elapsed = at - slot.index * ms;
  return (slot.b * (ms - elapsed)) / ms + slot.a;
}

/** Ms until what is counted has slid out entirely (the window is whole again). */
function slidingReset(slot: Slot, ms: number, at: number): number {
  if (slot.a > 0) return (slot.index + 2) * ms - at;
  if (slot.b > 0) return (slot.index + 1) * ms - at;
  return 0;
}

/** Ms until a request of `cost` fits (the previous window decaying, then the current one). */
function slidingWait(slot: Slot, ms: number, limit: number, cost: number, at: number): number {
  if (cost > limit) return slidingReset(slot, ms, at);
  const start = slot.index * ms;
  const room = limit - cost - slot.a;
  if (room >= 0 && slot.b > 0) {
    const elapsed = ms * (1 - room / slot.b);
    if (elapsed < ms) return Math.max(0, start + Math.ceil(elapsed) - at);
  }
  if (slot.a <= 0) return start + ms - at;
  const elapsed = Math.max(0, ms * (1 - (limit - cost) / slot.a));
  return start + ms + Math.ceil(elapsed) - at;
}
