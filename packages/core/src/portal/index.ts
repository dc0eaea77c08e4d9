export { sendWebResponse, servePortal, serveWeb, toNodeListener, toWebRequest } from "../http/node-bridge.js";
export {
  asPortalHandler,
  type CreatePortalSessionInput,
  createPortalHandler,
  linkUrl,
  Portal,
  type PortalHandler,
} from "./portal.js";
export {
  normalizeBasePath,
  PORTAL_ROLES,
  type PortalCustomer,
  type PortalOptions,
  type PortalRequestContext,
  type PortalRole,
  type PortalScopeOption,
  type ResolvedPortalOptions,
  resolvePortalOptions,
} from "./portal-options.js";
export { type PortalKeyRequest, type PortalServices, portalServices } from "./services.js";
export type { CreateSessionInput, PortalSessionLink, PortalSessionRecord } from "./sessions.js";
