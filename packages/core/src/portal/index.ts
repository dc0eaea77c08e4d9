export { sendWebResponse, servePortal, serveWeb, toNodeListener, toWebRequest } from "../http/node-bridge.js";
export { createPortalHandler, type PortalHandler } from "./handler.js";
export { type CreatePortalSessionInput, Portal } from "./portal.js";
export type {
  PortalCustomer,
  PortalOptions,
  PortalRequestContext,
  PortalRole,
  PortalScopeOption,
} from "./portal-options.js";
export type { CreateSessionInput, PortalSessionLink } from "./sessions.js";
