/**
 * The scenarios of the HTTP benchmark, shared by the runner (`http.bench.ts`) and the server it
 * starts per scenario (`http-server.ts <framework>-<variant>`); see http-server.ts for what each is.
 */
export const FRAMEWORKS = ["express", "fastify", "nest-express", "nest-fastify"] as const;
export const VARIANTS = [
  "bare",
  "flux",
  "flux-redis",
  "flux-redis-lease",
  "peer",
  "peer-redis",
  "redis-floor",
  "guard-floor",
  "handrolled-prisma",
  "handrolled-map",
] as const;
export type Framework = (typeof FRAMEWORKS)[number];
export type Variant = (typeof VARIANTS)[number];
/** Variants that count on Redis (the bench gives each a prefix and cleans it up). */
export const ON_REDIS: readonly Variant[] = ["flux-redis", "flux-redis-lease", "peer-redis", "redis-floor"];
/** Variants that run without Flux Keys (no keys issued: the servers take random tokens). */
export const WITHOUT_FLUX: readonly Variant[] = ["bare", "peer", "peer-redis", "redis-floor", "guard-floor"];
/** Variants whose token check is a library's or ours, not Flux Keys' (no WWW-Authenticate, no problem details). */
export const PEER_LIKE: readonly Variant[] = ["peer", "peer-redis", "guard-floor"];
