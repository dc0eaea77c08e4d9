/**
 * One clock for every instance: the database server's. Expiry, grace ends, override expiries and
 * every instant Flux Keys writes are decided with `now()`, which is this process's clock plus its
 * measured offset to PostgreSQL's `clock_timestamp()`. The offset is measured at start and every
 * `intervalMs`, from the quickest of a few round trips (the server's reading is taken as the
 * midpoint of the round trip, so the error is at most half of it, well under a millisecond on a
 * LAN). Instances whose own clocks disagree by minutes then agree to within a few milliseconds.
 */
import type { SqlDriver } from "./database.js";
import type { Logger } from "./options.js";

const SAMPLES = 3;

export class ServerClock {
  private offset = 0;
  private timer: NodeJS.Timeout | null = null;
  /** The corrected clock: milliseconds since the epoch on the database server's clock. */
  readonly now = (): number => this.local() + this.offset;

  constructor(
    private readonly local: () => number,
    private readonly driver: SqlDriver,
    private readonly logger: Logger,
  ) {}

  /** This instance's clock minus the server's, in ms (negative when this one is behind). */
  get skewMs(): number {
    return -this.offset;
  }

  async measure(): Promise<void> {
    const offset = await this.driver.withSession(async (session) => {
      let best = { rtt: Number.POSITIVE_INFINITY, offset: 0 };
      for (let i = 0; i < SAMPLES; i++) {
        const sentAt = this.local();
        const rows = await session.query<{ ms: string | number }>(
          "SELECT (extract(epoch from clock_timestamp()) * 1000)::float8 AS ms",
        );
        const receivedAt = this.local();
        const rtt = receivedAt - sentAt;
        if (rtt < best.rtt) best = { rtt, offset: Number(rows[0]?.ms) - (sentAt + rtt / 2) };
      }
      return best.offset;
    });
    // Whole milliseconds: instants computed from one reading must stay equal once stored.
    if (Number.isFinite(offset)) this.offset = Math.round(offset);
  }

  /** Measures again every `intervalMs`; a failed measurement keeps the last offset. */
  start(intervalMs: number): void {
    this.timer = setInterval(() => {
      this.measure().catch(() => {
        this.logger.debug?.({ event: "flux.clock.measure_failed" }, "server clock not measured");
      });
    }, intervalMs);
    this.timer.unref();
  }

  close(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }
}
