export { createPortalHandler, type PortalHandler } from "./handler.js";
export { sendWebResponse, servePortal, toNodeListener, toWebRequest } from "./node.js";
export { type CreatePortalSessionInput, Portal } from "./portal.js";
export type {
  PortalCustomer,
  PortalOptions,
  PortalRequestContext,
  PortalRole,
  PortalScopeOption,
} from "./portal-options.js";
export type { CreateSessionInput, PortalSessionLink } from "./sessions.js";
