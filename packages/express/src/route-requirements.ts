/**
 * What the route of a request requires, known before anything is consumed. Express runs the
 * route's guards (`requireScopes`, `requireEntitlement`) only after `fluxKeys()` has verified the
 * key, so without this a request its route refuses would count against the key's limits first.
 * Each guard carries its requirement; this walks the app's router as Express will (the layers
 * after `fluxKeys()` whose path matches, into nested routers, up to the first route that handles
 * the method) and collects the requirements of the guards it will meet, and the route's template
 * (recorded in usage for a request refused before its route ran).
 *
 * It reads the router's layers through the small surface Express 5's `router` exposes
 * (`stack`, `layer.match(path)`, `layer.route`, `route._handlesMethod`); where it cannot see
 * (an app mounted inside another, a guard added in a handler), the guard still refuses and gives
 * back what was consumed, as before.
 */

/** Guards made by `requireScopes` / `requireEntitlement` carry what they require. */
export const kRequirement = Symbol.for("flux-keys.express.requirement");

export interface Requirement {
  scopes: string[];
  entitlements: string[];
  /** `baseUrl` + route path of the route that will answer, as `req.route` gives it once it runs. */
  endpoint?: string | undefined;
}

interface LayerLike {
  handle: unknown;
  method?: string;
  route?: RouteLike;
  match(path: string): false | { path: string };
}

interface RouteLike {
  path?: unknown;
  stack: LayerLike[];
  _handlesMethod(method: string): boolean;
}

interface Walk {
  isSelf(handle: unknown): boolean;
  method: string;
  /** The middleware met (null until then). */
  seenSelf: unknown;
  found: Requirement;
  endpoint: string | undefined;
}

const NONE: Requirement = Object.freeze({ scopes: [], entitlements: [] }) as Requirement;
const CACHE_MAX = 1_000;

/** Per router: requirements by `METHOD path` (bounded; a full cache starts again). */
const caches = new WeakMap<object, Map<string, Requirement>>();

export function routeRequirements(
  router: { stack?: unknown } | undefined,
  self: unknown,
  method: string,
  path: string,
): Requirement {
  if (router === undefined || !Array.isArray(router.stack)) return NONE;
  let cache = caches.get(router);
  if (cache === undefined) {
    cache = new Map();
    caches.set(router, cache);
  }
  const key = `${method} ${path}`;
  const cached = cache.get(key);
  if (cached !== undefined) return cached;
  const walk = walkRouter(router.stack as LayerLike[], (handle) => handle === self, method, path);
  const none = walk.found.scopes.length === 0 && walk.found.entitlements.length === 0;
  let found: Requirement;
  if (walk.endpoint === undefined) found = none ? NONE : walk.found;
  else found = { scopes: walk.found.scopes, entitlements: walk.found.entitlements, endpoint: walk.endpoint };
  if (cache.size >= CACHE_MAX) cache.clear();
  cache.set(key, found);
  return found;
}

/**
 * For API documents: the first middleware on the way to `path` that `isSelf` recognises, and what
 * the guards after it require; null when the request meets none (the route is not protected) or
 * no route answers it. Not cached.
 */
export function protectionOf(
  router: { stack?: unknown } | undefined,
  isSelf: (handle: unknown) => boolean,
  method: string,
  path: string,
): { middleware: unknown; requirement: Requirement } | null {
  if (router === undefined || !Array.isArray(router.stack)) return null;
  const walk = walkRouter(router.stack as LayerLike[], isSelf, method, path);
  return walk.seenSelf === null || !walk.answered
    ? null
    : { middleware: walk.seenSelf, requirement: walk.found };
}

function walkRouter(
  stack: LayerLike[],
  isSelf: (handle: unknown) => boolean,
  method: string,
  path: string,
): Walk & { answered: boolean } {
  const walk: Walk = {
    isSelf,
    method,
    seenSelf: null,
    found: { scopes: [], entitlements: [] },
    endpoint: undefined,
  };
  const answered = visit(stack, path, "", walk);
  return Object.assign(walk, { answered });
}

/** True when the walk reached the route that will answer (nothing after it runs). */
function visit(stack: LayerLike[], path: string, base: string, walk: Walk): boolean {
  for (const layer of stack) {
    let match: false | { path: string };
    try {
      match = layer.match(path);
    } catch {
      match = false;
    }
    if (!match) continue;
    const route = layer.route;
    if (route !== undefined) {
      if (!route._handlesMethod(walk.method) && walk.method !== "HEAD") continue;
      if (walk.seenSelf !== null) {
        const method = walk.method.toLowerCase();
        for (const handler of route.stack) {
          if (handler.method === undefined || handler.method === method || method === "head") {
            collect(handler.handle, walk);
          }
        }
        if (typeof route.path === "string") walk.endpoint = `${base}${route.path}`;
      }
      return true;
    }
    const handle = layer.handle as { stack?: unknown } | undefined;
    if (walk.seenSelf === null && walk.isSelf(handle)) {
      walk.seenSelf = handle;
      continue;
    }
    if (walk.seenSelf !== null) collect(handle, walk);
    if (handle !== undefined && Array.isArray(handle.stack)) {
      const rest = path.slice(match.path.length);
      const inner = rest.startsWith("/") ? rest : `/${rest}`;
      if (visit(handle.stack as LayerLike[], inner, `${base}${match.path}`, walk)) return true;
    }
  }
  return false;
}

function collect(handle: unknown, walk: Walk): void {
  const requirement = (handle as { [kRequirement]?: Requirement } | undefined)?.[kRequirement];
  if (requirement === undefined) return;
  walk.found.scopes.push(...requirement.scopes);
  walk.found.entitlements.push(...requirement.entitlements);
}
