/**
 * `@flux-keys/portal`: the customer self-service portal of Flux Keys as a Web-standard handler
 * (routes on hono) with a typed front end bundled at build time. Mount it with an adapter
 * (`fluxPortal` in Express and Fastify, `FluxKeysModule.forRoot({ portal })` in Nest), serve it
 * alone (`servePortal` from core), or call it from any runtime that speaks `Request`/`Response`.
 */
export type {
  PortalCustomer,
  PortalHandler,
  PortalOptions,
  PortalRequestContext,
  PortalRole,
  PortalScopeOption,
  PortalServices,
} from "@flux-keys/core";
export { portalServices } from "@flux-keys/core";
export { createPortalHandler } from "./handler.js";
export { CSP_DIRECTIVES, clientFacingUrl } from "./http.js";
