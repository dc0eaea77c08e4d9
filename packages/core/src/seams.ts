/**
 * The narrow dependencies of the modules built over a Flux instance (HTTP auth, the leak report
 * handler, the Prometheus registry, operator tooling through `@flux-keys/core/admin`): each names
 * only what its module uses, as the webhook dispatcher's `DispatcherDependencies` does.
 * `createFlux` registers them for the instance it returns; `flux.internals` is for tests only.
 */
import type { AuditEntry } from "./audit.js";
import type { SqlDriver } from "./database.js";
import { FluxConfigError } from "./errors.js";
import type { EventInput } from "./events/events.js";
import type { Flux } from "./flux.js";
import type { CheckResult, VerifyOptions } from "./keys/verify.js";
import type { MetricSink } from "./telemetry/telemetry.js";

/** What `createHttpAuth` (and so every adapter) needs beyond the public API. */
export interface HttpAuthDependencies {
  /** The instance's key prefix: a credential that cannot be one of its keys is refused unread. */
  readonly keyPrefix: string;
  /** The instance's one `trustProxy` setting, compiled. */
  readonly trust: (address: string, hop: number) => boolean;
  /**
   * `flux.keys.check()`, answered synchronously when the result is known in this turn (a cached
   * key on in-process limits), else as a promise.
   */
  readonly check: (secret: unknown, options: VerifyOptions) => CheckResult | Promise<CheckResult>;
}

/** What the leak report handler (`createSecretScanningHandler`) needs beyond the public API. */
export interface LeakReportDependencies {
  readonly keyPrefix: string;
  /** Writes one audit event (`key.leaked`). */
  writeAudit(entry: AuditEntry): Promise<unknown>;
  /** Publishes a lifecycle event outside a transaction (listeners, webhooks). */
  publish(event: EventInput): Promise<unknown>;
}

/** What a metrics registry (`createPrometheusRegistry`) needs: to be told every measurement. */
export interface MetricsDependencies {
  addSink(sink: MetricSink): void;
}

/** What operator tooling needs (`@flux-keys/core/admin`): the store's SQL sessions. */
export interface AdminDependencies {
  /** Sessions on the app's pool. */
  readonly driver: SqlDriver;
  /** Sessions for DDL and advisory locks: the direct connection when the pool is a pooler. */
  readonly sessionDriver: SqlDriver;
  /** The PostgreSQL schema of the tables, or undefined on PGlite. */
  readonly schema: string | undefined;
}

export interface FluxSeams {
  readonly httpAuth: HttpAuthDependencies;
  readonly leaks: LeakReportDependencies;
  readonly metrics: MetricsDependencies;
  readonly admin: AdminDependencies;
}

const seams = new WeakMap<object, FluxSeams>();

/** @internal Called by `createFlux` once per instance. */
export function registerSeams(flux: Flux, dependencies: FluxSeams): void {
  seams.set(flux, dependencies);
}

/** The dependencies of one instance; throws for an object that `createFlux` did not return. */
export function seamsOf(flux: Flux): FluxSeams {
  const found = seams.get(flux);
  if (found === undefined) {
    throw new FluxConfigError("invalid_option", "Expected a Flux instance returned by createFlux().");
  }
  return found;
}
