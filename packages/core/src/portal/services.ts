/**
 * The portal's seam: everything `@flux-keys/portal` may use of one Flux instance, named, and
 * nothing else (it never reads `flux.internals`). Built by `portalServices(flux)`, as the webhook
 * dispatcher's dependencies are built by core: a test or a host can also hand the portal its own.
 */
import type { Flux } from "../flux.js";
import type { Logger } from "../options.js";
import type { Actor, ApiKeyInfo } from "../types.js";
import { PortalSessions } from "./sessions.js";

type Keys = Flux["keys"];

/** A key issued through the portal: for one org, created by one customer user. */
export interface PortalKeyRequest {
  orgId: string;
  name: string;
  scopes: string[];
  createdBy: Actor;
  expiresInDays?: number | null;
  expiresAt?: Date | null;
  /** Refuse with `key_limit_reached` (409) when the org already holds this many active keys. */
  maxActiveKeys: number;
}

export interface PortalServices {
  /** The instance's logger (`createFlux({ logger })`). */
  readonly logger: Logger;
  /** The instance's clock, in ms (the database's, when it measures one). */
  now(): number;
  /** Whether the socket peer at `address`, `hop` proxies away, is trusted: the instance's one `trustProxy`. */
  trust(address: string, hop: number): boolean;
  /** The client address of a request, as `trustProxy` says (for audit actors). */
  clientAddress: Flux["limits"]["clientAddress"];
  /** Portal links and sessions (single use, digests only, audited). */
  readonly sessions: Pick<PortalSessions, "createLink" | "exchange" | "find" | "end">;
  readonly keys: Pick<
    Keys,
    "get" | "list" | "update" | "rotate" | "revoke" | "graceUsage" | "suggestScopes"
  > & {
    issue(request: PortalKeyRequest): Promise<{ key: ApiKeyInfo; secret: string }>;
  };
  readonly orgs: Pick<Flux["orgs"], "get">;
  readonly plans: Pick<Flux["plans"], "get">;
  readonly usage: Pick<Flux["usage"], "query" | "top">;
  readonly audit: Pick<Flux["audit"], "list">;
}

const cache = new WeakMap<Flux, PortalServices>();

/** The portal's dependencies on `flux` (one object per instance). */
export function portalServices(flux: Flux): PortalServices {
  const known = cache.get(flux);
  if (known !== undefined) return known;
  // Options are read at each call: the clock is replaced once the database clock is measured.
  const options = () => flux.internals.options;
  const { keys } = flux;
  const services: PortalServices = {
    get logger() {
      return options().logger;
    },
    now: () => options().clock(),
    trust: (address, hop) => options().trust(address, hop),
    clientAddress: (source) => flux.limits.clientAddress(source),
    sessions: new PortalSessions(flux),
    keys: {
      get: (id) => keys.get(id),
      list: (query) => keys.list(query),
      update: (id, changes, opts) => keys.update(id, changes, opts),
      rotate: (id, opts) => keys.rotate(id, opts),
      revoke: (id, opts) => keys.revoke(id, opts),
      graceUsage: (id, opts) => keys.graceUsage(id, opts),
      suggestScopes: (id, opts) => keys.suggestScopes(id, opts),
      issue: (request) => {
        const builder = keys
          .create()
          .forOrg(request.orgId)
          .named(request.name)
          .withScopes(request.scopes)
          .createdBy(request.createdBy);
        if (request.expiresInDays != null) builder.expiresInDays(request.expiresInDays);
        else if (request.expiresAt != null) builder.expiresAt(request.expiresAt);
        builder.withinActiveKeyLimit(request.maxActiveKeys);
        return builder.issue();
      },
    },
    orgs: { get: (id) => flux.orgs.get(id) },
    plans: { get: (id) => flux.plans.get(id) },
    usage: { query: (query) => flux.usage.query(query), top: (query) => flux.usage.top(query) },
    audit: { list: (query) => flux.audit.list(query) },
  };
  cache.set(flux, services);
  return services;
}
