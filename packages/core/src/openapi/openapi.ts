/**
 * How routes protected by Flux Keys read in an OpenAPI 3.1 document, decided once for every
 * adapter: two security schemes (the `X-API-Key` header and `Authorization: Bearer`), each
 * operation's scopes and entitlements as the roles of its security requirements (3.1 allows roles
 * for non-OAuth schemes), the same plus the cost in an `x-flux-keys` extension, and the 401 / 403 /
 * 429 / 503 answers as RFC 9457 problem details. Plain objects only: no OpenAPI library here.
 */
import { ERROR_CODES } from "../errors.js";
import { PROBLEM_CONTENT_TYPE } from "../http/problem.js";

export interface OpenApiOptions {
  /** Name of the API key header scheme in `components.securitySchemes`. @default 'fluxApiKey' */
  apiKeyScheme?: string;
  /** Name of the bearer scheme. @default 'fluxBearer' */
  bearerScheme?: string;
  /** Header carrying the bare key (the adapter's `apiKeyHeader`); `false` for bearer only. @default 'x-api-key' */
  apiKeyHeader?: string | false;
  /** Name of the problem details schema in `components.schemas`. @default 'FluxProblem' */
  problemSchema?: string;
  /**
   * How responses refer to the problem schema (Fastify: `'FluxProblem#'`, a shared schema).
   * @default '#/components/schemas/<problemSchema>'
   */
  problemRef?: string;
}

/** What one operation requires, as the adapters know it. */
export interface OperationRequirements {
  scopes?: readonly string[];
  entitlement?: string | readonly string[];
  /** Units a request takes, or `"per-request"` when the app computes it for each request. @default 1 */
  cost?: number | "per-request";
  public?: boolean;
}

/** The `x-flux-keys` extension of an operation. */
export interface FluxKeysExtension {
  scopes: string[];
  entitlements: string[];
  /** Units a request takes; `"per-request"` when a function decides it for each request. */
  cost: number | "per-request";
}

type JsonObject = Record<string, unknown>;

interface Resolved {
  apiKeyScheme: string;
  bearerScheme: string;
  apiKeyHeader: string | false;
  problemSchema: string;
  problemRef: string;
}

function resolve(options: OpenApiOptions = {}): Resolved {
  return {
    apiKeyScheme: options.apiKeyScheme ?? "fluxApiKey",
    bearerScheme: options.bearerScheme ?? "fluxBearer",
    apiKeyHeader: options.apiKeyHeader ?? "x-api-key",
    problemSchema: options.problemSchema ?? "FluxProblem",
    problemRef: options.problemRef ?? `#/components/schemas/${options.problemSchema ?? "FluxProblem"}`,
  };
}

/** The RFC 9457 problem document Flux Keys sends on every denial, as a JSON Schema. */
export function problemDetailsSchema(): JsonObject {
  return {
    type: "object",
    description: "RFC 9457 problem details of a Flux Keys denial.",
    required: ["type", "title", "status", "detail", "code"],
    properties: {
      type: { type: "string", format: "uri" },
      title: { type: "string" },
      status: { type: "integer" },
      detail: { type: "string" },
      code: { type: "string", enum: Object.keys(ERROR_CODES) },
      instance: { type: "string" },
      retryAfter: { type: ["integer", "null"], description: "Seconds until a retry may succeed." },
      window: { type: "string", description: "The rate limit window that refused the request." },
      requiredScopes: { type: "array", items: { type: "string" } },
    },
    additionalProperties: true,
  };
}

/** `components` entries: the security schemes and the problem schema. */
export function openApiComponents(options?: OpenApiOptions): {
  securitySchemes: Record<string, JsonObject>;
  schemas: Record<string, JsonObject>;
} {
  const o = resolve(options);
  const securitySchemes: Record<string, JsonObject> = {
    [o.bearerScheme]: {
      type: "http",
      scheme: "bearer",
      description: "A Flux Keys API key as `Authorization: Bearer <key>`.",
    },
  };
  if (o.apiKeyHeader !== false) {
    securitySchemes[o.apiKeyScheme] = {
      type: "apiKey",
      in: "header",
      name: o.apiKeyHeader,
      description: "A Flux Keys API key in the header.",
    };
  }
  return { securitySchemes, schemas: { [o.problemSchema]: problemDetailsSchema() } };
}

function entitlementList(value: OperationRequirements["entitlement"]): string[] {
  if (value === undefined) return [];
  return typeof value === "string" ? [value] : [...value];
}

/** The extension of an operation, or null for a public one. */
export function fluxKeysExtension(requirements: OperationRequirements): FluxKeysExtension | null {
  if (requirements.public === true) return null;
  return {
    scopes: [...(requirements.scopes ?? [])],
    entitlements: entitlementList(requirements.entitlement),
    cost: requirements.cost ?? 1,
  };
}

/**
 * What a protected operation gains: `security` (either scheme, with the scopes and
 * `entitlement:<name>` as roles), `x-flux-keys`, and the denial responses (added to `responses`,
 * never replacing one the document already describes).
 */
export function operationSecurity(
  requirements: OperationRequirements,
  options?: OpenApiOptions,
): {
  security: Array<Record<string, string[]>>;
  "x-flux-keys": FluxKeysExtension;
  responses: JsonObject;
} | null {
  const extension = fluxKeysExtension(requirements);
  if (extension === null) return null;
  const o = resolve(options);
  const roles = [...extension.scopes, ...extension.entitlements.map((name) => `entitlement:${name}`)];
  const security: Array<Record<string, string[]>> = [{ [o.bearerScheme]: roles }];
  if (o.apiKeyHeader !== false) security.push({ [o.apiKeyScheme]: [...roles] });
  return { security, "x-flux-keys": extension, responses: denialResponses(extension, o) };
}

function denialResponses(extension: FluxKeysExtension, o: Resolved): JsonObject {
  const content = { [PROBLEM_CONTENT_TYPE]: { schema: { $ref: o.problemRef } } };
  const forbidden = [
    extension.scopes.length > 0 ? `lacks a scope (${extension.scopes.join(", ")})` : null,
    extension.entitlements.length > 0 ? `its org lacks ${extension.entitlements.join(", ")}` : null,
    "is used from a network it may not be used from",
  ].filter((part) => part !== null);
  return {
    "401": {
      description: "The API key is missing, malformed, unknown, revoked or expired.",
      headers: { "WWW-Authenticate": { schema: { type: "string" } } },
      content,
    },
    "403": { description: `The API key ${forbidden.join(", or ")}.`, content },
    "429": {
      description: "A rate limit or the key's quota is exhausted.",
      headers: {
        "Retry-After": { schema: { type: "integer" } },
        RateLimit: { schema: { type: "string" } },
        "RateLimit-Policy": { schema: { type: "string" } },
      },
      content,
    },
    "503": { description: "A store Flux Keys needs is unavailable; retry shortly.", content },
  };
}

/** An operation with the Flux Keys parts added (a copy; responses it describes are kept). */
export function withOperationSecurity(
  operation: JsonObject,
  requirements: OperationRequirements,
  options?: OpenApiOptions,
): JsonObject {
  const added = operationSecurity(requirements, options);
  if (added === null) return operation;
  return {
    ...operation,
    security: added.security,
    "x-flux-keys": added["x-flux-keys"],
    responses: { ...added.responses, ...((operation.responses as JsonObject | undefined) ?? {}) },
  };
}

const METHODS = ["get", "put", "post", "delete", "options", "head", "patch", "trace"] as const;

/**
 * Adds Flux Keys to a whole document (returned as a copy): the components, and each operation
 * that `requirementsOf(method, path)` says is protected (null: not behind Flux Keys).
 */
export function addFluxKeysToDocument<T extends object>(
  document: T,
  requirementsOf: (method: string, path: string) => OperationRequirements | null,
  options?: OpenApiOptions,
): T {
  const source = document as JsonObject;
  const components = (source.components as JsonObject | undefined) ?? {};
  const added = openApiComponents(options);
  const paths: JsonObject = {};
  for (const [path, item] of Object.entries((source.paths as JsonObject | undefined) ?? {})) {
    const copy: JsonObject = { ...(item as JsonObject) };
    for (const method of METHODS) {
      const operation = copy[method] as JsonObject | undefined;
      if (operation === undefined) continue;
      const requirements = requirementsOf(method.toUpperCase(), path);
      if (requirements !== null) copy[method] = withOperationSecurity(operation, requirements, options);
    }
    paths[path] = copy;
  }
  return {
    ...source,
    components: {
      ...components,
      securitySchemes: {
        ...((components.securitySchemes as JsonObject | undefined) ?? {}),
        ...added.securitySchemes,
      },
      schemas: { ...((components.schemas as JsonObject | undefined) ?? {}), ...added.schemas },
    },
    paths,
  } as T;
}
