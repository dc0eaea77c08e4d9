/**
 * Failed authentications per client address, counted in memory in fixed windows, for at most
 * `max` addresses: a flood from spoofed or rotating addresses cannot grow memory past the bound
 * (the least recently failing address is forgotten first, and starts again from zero).
 */
import { LRUCache } from "lru-cache";

interface Window {
  count: number;
  resetAt: number;
}

export class AddressFailures {
  private readonly windows: LRUCache<string, Window>;

  constructor(
    max: number,
    private readonly windowMs: number,
  ) {
    this.windows = new LRUCache({ max });
  }

  /** Counts one failure; answers with the count in the current window and when it resets (ms, real time). */
  fail(bucket: string): Window {
    const now = Date.now();
    let window = this.windows.get(bucket);
    if (window === undefined || window.resetAt <= now) {
      window = { count: 0, resetAt: now + this.windowMs };
      this.windows.set(bucket, window);
    }
    window.count++;
    return window;
  }

  get size(): number {
    return this.windows.size;
  }
}
