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
  "handrolled-prisma",
  "handrolled-map",
] as const;
export type Framework = (typeof FRAMEWORKS)[number];
export type Variant = (typeof VARIANTS)[number];
