/** The JSON the portal's API answers with (see ../handler.ts), as the front end reads it. */

export interface PortalConfig {
  csrfToken: string;
  basePath: string;
  canSignOut: boolean;
  returnUrl: string | null;
  title: string;
  supportUrl: string | null;
}

export interface Actor {
  type: "admin" | "user" | "system";
  id?: string;
  ip?: string;
}

export type KeyStatus = "active" | "expiring" | "grace" | "revoked" | "expired";

export interface KeyView {
  id: string;
  name: string;
  start: string;
  last4: string;
  environment: string;
  scopes: string[];
  status: KeyStatus;
  createdBy: Actor;
  createdByYou: boolean;
  createdAt: string;
  lastUsedAt: string | null;
  expiresAt: string | null;
  revokedAt: string | null;
  sunsetAt: string | null;
  replacedById: string | null;
  canManage: boolean;
}

export interface ScopeOption {
  scope: string;
  description?: string;
}

export interface Me {
  org: { id: string; name: string; suspendedAt: string | null };
  plan: { id: string; name: string } | null;
  user: { id: string; role: "viewer" | "member" | "admin" };
  scopes: ScopeOption[];
  freeScopes: boolean;
  can: { create: boolean; manageAll: boolean };
  session: { expiresAt: string } | null;
}

export interface Page<T> {
  items: T[];
  nextCursor: string | null;
}

export interface EndpointCount {
  method: string;
  endpoint: string;
  calls: number;
  errors: number;
}

export interface GraceInfo {
  rotatedAt: string;
  sunsetAt: string;
  replacedBy: { id: string; start: string; last4: string };
  callsSinceRotation: number;
  errorsSinceRotation: number;
  lastUsedAt: string | null;
  endpoints: Array<EndpointCount & { lastCallAt: string | null }>;
  clients: Array<{ address: string; userAgent: string | null; calls: number; lastSeenAt: string }> | null;
}

export interface KeyDetail {
  key: KeyView;
  grace: GraceInfo | null;
  scopeAdvice: { suggested: string[]; unused: string[] } | null;
}

export type Granularity = "minute" | "hour" | "day";
export type RangeName = "1h" | "24h" | "7d" | "30d";

export interface UsagePoint {
  at: string;
  calls: number;
  errors: number;
  refused: number;
}

export interface Usage {
  range: RangeName;
  granularity: Granularity;
  from: string;
  to: string;
  totals: { calls: number; errors: number };
  outcomes: Record<string, number>;
  refused: number;
  points: UsagePoint[];
  endpoints: EndpointCount[];
  keys: Array<{
    keyId: string;
    name: string | null;
    start: string | null;
    last4: string | null;
    calls: number;
    errors: number;
  }>;
}

export interface AuditEntry {
  id: string;
  at: string;
  action: string;
  actor: Actor & { you: boolean };
  keyId: string | null;
  details: Record<string, unknown>;
}
