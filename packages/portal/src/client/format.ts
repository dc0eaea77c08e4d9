/** Words and numbers the portal shows: pure functions, so they are unit-tested without a browser. */
import type { Actor, KeyStatus, RangeName } from "./types.js";

const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
const dayFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium" });
const numberFormat = new Intl.NumberFormat();

export function when(iso: string | null | undefined): string {
  return iso ? dateFormat.format(new Date(iso)) : "—";
}

export function day(iso: string | null | undefined): string {
  return iso ? dayFormat.format(new Date(iso)) : "—";
}

const UNITS: ReadonlyArray<readonly [string, number]> = [
  ["day", 86_400_000],
  ["hour", 3_600_000],
  ["minute", 60_000],
];

/** "3 hours ago", "in 2 days", "just now"; `now` is injectable for tests. */
export function relative(iso: string | null | undefined, now: number = Date.now()): string {
  if (!iso) return "never";
  const diff = new Date(iso).getTime() - now;
  const abs = Math.abs(diff);
  for (const [unit, ms] of UNITS) {
    if (abs >= ms) {
      const n = Math.round(abs / ms);
      const label = `${n} ${unit}${n === 1 ? "" : "s"}`;
      return diff < 0 ? `${label} ago` : `in ${label}`;
    }
  }
  return diff < 0 ? "just now" : "in under a minute";
}

export function num(n: number): string {
  return numberFormat.format(n);
}

/** Ends a sentence after a name that may already end with a period ("Acme Inc."). */
export function sentence(text: string): string {
  return /[.!?]$/.test(text) ? text : `${text}.`;
}

export const STATUS_LABEL: Record<KeyStatus, string> = {
  active: "Active",
  expiring: "Expiring soon",
  grace: "In grace period",
  revoked: "Revoked",
  expired: "Expired",
};

export function keyText(key: { start: string | null; last4: string | null }): string {
  return `${key.start}…${key.last4}`;
}

/** Who created a key, as the customer sees it. */
export function who(createdBy: Actor, mine: boolean): string {
  if (mine) return "you";
  if (createdBy.type === "user") return createdBy.id || "a user";
  if (createdBy.type === "admin") return `support${createdBy.id ? ` (${createdBy.id})` : ""}`;
  return "system";
}

/** Who did something in the audit log: members and viewers get no ids, only "you" or a kind. */
export function actorLabel(actor: Actor & { you: boolean }): string {
  if (actor.you) return "you";
  if (actor.type === "user") return actor.id || "a user";
  return actor.type === "admin" ? "support" : "system";
}

export const OUTCOME_LABEL: Readonly<Record<string, string>> = {
  rate_limited: "rate limited",
  quota_exceeded: "over quota",
  scope_denied: "missing scope",
  entitlement_denied: "feature not in plan",
  ip_not_allowed: "network not allowed",
  revoked: "revoked key",
  expired: "expired key",
  store_unavailable: "service unavailable",
};

/** " (rate limited 3, revoked key 1)" for the refused outcomes that occurred, or "". */
export function outcomeSummary(outcomes: Record<string, number> | null | undefined): string {
  const parts = Object.entries(outcomes ?? {})
    .filter(([outcome, calls]) => outcome !== "allowed" && calls > 0)
    .map(([outcome, calls]) => `${OUTCOME_LABEL[outcome] ?? outcome} ${num(calls)}`);
  return parts.length ? ` (${parts.join(", ")})` : "";
}

export const RANGE_LABEL: Record<RangeName, string> = {
  "1h": "Last hour",
  "24h": "Last 24 hours",
  "7d": "Last 7 days",
  "30d": "Last 30 days",
};

export const ACTIONS: Readonly<Record<string, string>> = {
  "key.created": "Key created",
  "key.updated": "Key renamed or changed",
  "key.scopes_changed": "Scopes changed",
  "key.rotated": "Key rotated",
  "key.revoked": "Key revoked",
  "portal.session_started": "Signed in to the portal",
  "portal.session_ended": "Signed out of the portal",
  "org.created": "Organization created",
  "org.updated": "Organization updated",
  "org.plan_changed": "Plan changed",
  "org.entitlement_set": "Feature access changed",
};

const strings = (value: unknown): string[] =>
  Array.isArray(value) ? value.filter((v): v is string => typeof v === "string") : [];

/** One line of what an audit event changed. */
export function auditSummary(event: { action: string; details?: Record<string, unknown> | null }): string {
  const d = event.details ?? {};
  if (event.action === "key.scopes_changed")
    return `${strings(d.from).join(" ")} → ${strings(d.to).join(" ")}`;
  if (event.action === "key.rotated" && typeof d.sunsetAt === "string") {
    return `old key works until ${when(d.sunsetAt)}`;
  }
  if (event.action === "key.revoked" && d.reason) return `reason: ${String(d.reason)}`;
  if (event.action === "key.created" && Array.isArray(d.scopes)) {
    return `${d.name ? `${String(d.name)} · ` : ""}${strings(d.scopes).join(" ") || "no scopes"}`;
  }
  if (Array.isArray(d.changed)) return `changed: ${strings(d.changed).join(", ")}`;
  return "";
}
