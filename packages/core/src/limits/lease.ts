/**
 * Leasing (`limits.lease`, opt-in, Redis only): an instance takes `units` of a key's windows and
 * quota from Redis in one call of the same script, as one request costing `units` would, and
 * spends them here until they run out or the lease ends. The script admits the lease against
 * every counter, so what all instances admit together never exceeds what Redis admitted.
 *
 * A lease ends when the first of its counters would no longer hold those units:
 * - a fixed window at its reset (its TTL when the lease was granted);
 * - a sliding window at the end of its current period: the script counts a period's units
 *   together, whenever in the period they were spent, so a unit spent later in the period it was
 *   leased in is counted exactly as if it had been decided then;
 * - a quota at the end of its period.
 * Each end is measured from when the call was sent, so a slow reply shortens the lease rather than
 * stretching it. GCRA has no such boundary (a unit spent later than it was taken could join a
 * refilled burst), so a key with a GCRA window is never leased.
 *
 * What leasing gives up is the other direction: units leased here and not spent are lost to the
 * other instances until the window resets. When a lease is refused (fewer than `units` left), the
 * key is decided exactly, one call per request, until the window that refused it resets.
 */
import type { BoundLimits, BoundWindow } from "./binding.js";
import { periodAt } from "./periods.js";
import { WINDOW_FIELDS } from "./shared-store.js";

export class Lease {
  /** Units this instance holds, to spend before `until`. */
  left = 0;
  /** Clock ms at which the held units stop being valid. */
  until = 0;
  /** Clock ms until which requests are decided exactly (a lease was refused). */
  exactUntil = 0;
  /** The call that is taking the next lease, joined by the requests that find none. */
  taking: Promise<void> | null = null;
  /** Per window, then the quota: what Redis had left once the lease was taken. */
  readonly remaining: number[];
  /** Per window: when it resets (clock ms). */
  readonly resetAt: number[];

  constructor(
    readonly units: number,
    windows: number,
    quota: boolean,
  ) {
    this.remaining = new Array(windows + (quota ? 1 : 0)).fill(0);
    this.resetAt = new Array(windows).fill(0);
  }

  /** Takes `cost` from the held units; false when they are too few or the lease has ended. */
  spend(cost: number, now: number): boolean {
    if (now >= this.until || this.left < cost) return false;
    this.left -= cost;
    return true;
  }

  /**
   * Takes in the script's answer to a lease request sent at `sentAt` (its `replyWidth` numbers
   * from `offset`). Granted: the units are held until the first counter's boundary. Refused:
   * exact decisions until the soonest reset the reply reports.
   */
  settle(bound: BoundLimits, values: readonly number[], offset: number, sentAt: number): void {
    const windows = bound.windows;
    const refused = values[offset] !== 0;
    let at = offset + 1;
    // The soonest end of a counter's hold on the units, and (refused) the soonest reset of a
    // counter that refused them.
    let ends = Number.POSITIVE_INFINITY;
    let retry = Number.POSITIVE_INFINITY;
    for (let i = 0; i < windows.length; i++) {
      const window = windows[i] as BoundWindow;
      const reset = values[at + 1] as number;
      this.remaining[i] = values[at] as number;
      this.resetAt[i] = sentAt + reset;
      // Sliding: once this period holds units, the reply's reset is the end of the next one.
      const boundary = window.algorithm === "sliding" ? reset - window.seconds * 1000 : reset;
      if (boundary < ends) ends = boundary;
      if (values[at + 3] === 1 && reset < retry) retry = reset;
      at += WINDOW_FIELDS;
    }
    let quotaEnds = Number.POSITIVE_INFINITY;
    const quota = bound.quota;
    if (quota !== null) {
      this.remaining[windows.length] = values[at] as number;
      const endsAt = periodAt(quota.period, sentAt).endsAt;
      if (endsAt !== null) quotaEnds = endsAt;
      if (values[at + 1] === 1 && endsAt !== null && endsAt - sentAt < retry) retry = endsAt - sentAt;
    }
    if (refused) {
      // A `total` quota that refused never resets: exact from then on (it refuses by itself).
      this.exactUntil = Number.isFinite(retry) ? sentAt + Math.max(retry, 1) : Number.POSITIVE_INFINITY;
      return;
    }
    const until = Math.min(sentAt + ends, quotaEnds);
    if (this.until > sentAt && this.left > 0) {
      // Units still held from an earlier lease: both are spent before the sooner end.
      this.left += this.units;
      if (until < this.until) this.until = until;
    } else {
      this.left = this.units;
      this.until = until;
    }
  }
}

/** Whether a key's limits may be leased: on Redis, with no GCRA window. */
export function leasable(bound: BoundLimits): boolean {
  return bound.shared !== null && bound.windows.every((window) => window.algorithm !== "gcra");
}
