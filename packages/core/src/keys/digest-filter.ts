/**
 * A Bloom filter of the key digests that exist, so that a well-formed key nobody issued is refused
 * with no I/O. Digests are SHA-256 (or HMAC-SHA-256) output, already uniformly random: the bit
 * positions come straight from the digest's first 64 bits (double hashing, Kirsch–Mitzenmacher),
 * with no hashing of our own. That 64-bit prefix (`filterHash`) is also all that travels on the
 * invalidation bus when a key is issued, never the digest.
 *
 * Why not a library: the npm Bloom filters (e.g. `bloom-filters`) re-hash every item with a JS
 * hash and pull in lodash, seedrandom and more; here the input is a hash already, so the filter is
 * a bit array and two multiplications.
 */

/** The part of a digest the filter uses: its first 16 hex characters (64 bits). */
export function filterHash(digest: string): string {
  return digest.slice(0, 16);
}

const HASH = /^[0-9a-f]{16}$/;

export function isFilterHash(value: unknown): value is string {
  return typeof value === "string" && HASH.test(value);
}

export class DigestFilter {
  private readonly bits: Uint32Array;
  /** Number of bits. */
  private readonly m: number;
  /** Bits set per item. */
  private readonly k: number;
  /** Items added (repeats included), to know when the filter is past its capacity. */
  count = 0;

  /**
   * Sized for `capacity` items at `falsePositiveRate`: m = -n·ln p / ln²2 bits, k = m/n·ln 2
   * (9.6 bits per item at 1 %, 14.4 at 0.1 %).
   */
  constructor(
    readonly capacity: number,
    readonly falsePositiveRate: number,
  ) {
    const n = Math.max(1, Math.ceil(capacity));
    const m = Math.max(64, Math.ceil((-n * Math.log(falsePositiveRate)) / Math.LN2 ** 2));
    this.m = Math.ceil(m / 32) * 32;
    this.k = Math.max(1, Math.round((this.m / n) * Math.LN2));
    this.bits = new Uint32Array(this.m / 32);
  }

  /** Adds a digest (or its `filterHash`). */
  add(digestOrHash: string): void {
    const [h1, h2] = halves(digestOrHash);
    for (let i = 0; i < this.k; i++) {
      const bit = (h1 + i * h2) % this.m;
      this.bits[bit >>> 5]! |= 1 << (bit & 31);
    }
    this.count++;
  }

  /** False: surely never added. True: added, or a false positive (at about `falsePositiveRate`). */
  has(digestOrHash: string): boolean {
    const [h1, h2] = halves(digestOrHash);
    for (let i = 0; i < this.k; i++) {
      const bit = (h1 + i * h2) % this.m;
      if ((this.bits[bit >>> 5]! & (1 << (bit & 31))) === 0) return false;
    }
    return true;
  }

  /** Memory held by the bit array. */
  get bytes(): number {
    return this.bits.byteLength;
  }

  get hashes(): number {
    return this.k;
  }
}

/** Two 32-bit numbers from the first 64 bits; the step is odd so that it never repeats early. */
function halves(digestOrHash: string): [number, number] {
  const h1 = Number.parseInt(digestOrHash.slice(0, 8), 16) || 0;
  const h2 = (Number.parseInt(digestOrHash.slice(8, 16), 16) || 0) | 1;
  return [h1, h2 >>> 0];
}
