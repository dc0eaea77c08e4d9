/** Human output: tables (cli-table3, borderless like kubectl), dates, and short summaries. */
import type { ApiKeyInfo, Org, Plan, Quota, RateLimitWindow } from "@flux-keys/core";
import Table from "cli-table3";
import { printable } from "./terminal.js";

const PLAIN = {
  top: "",
  "top-mid": "",
  "top-left": "",
  "top-right": "",
  bottom: "",
  "bottom-mid": "",
  "bottom-left": "",
  "bottom-right": "",
  left: "",
  "left-mid": "",
  mid: "",
  "mid-mid": "",
  right: "",
  "right-mid": "",
  middle: "  ",
};

/**
 * Columns separated by two spaces, a header row, no borders or colours (stable when piped). Every
 * cell is escaped: cells hold stored strings, and a line break in one would forge a row.
 */
export function table(head: string[], rows: Array<Array<string | number>>): string {
  const t = new Table({
    head,
    chars: PLAIN,
    style: { head: [], border: [], "padding-left": 0, "padding-right": 0, compact: true },
  });
  for (const row of rows) t.push(row.map((cell) => printable(String(cell))));
  return t
    .toString()
    .split("\n")
    .map((line) => line.trimEnd())
    .join("\n");
}

/** `label  value` pairs for one record. */
export function details(pairs: Array<[string, string | number | null | undefined]>): string {
  return table(
    ["FIELD", "VALUE"],
    pairs.map(([label, value]) => [label, value === null || value === undefined ? "-" : String(value)]),
  )
    .split("\n")
    .slice(1)
    .join("\n");
}

export function when(date: Date | string | null | undefined): string {
  if (date === null || date === undefined) return "-";
  const iso = (typeof date === "string" ? new Date(date) : date).toISOString();
  return `${iso.slice(0, 10)} ${iso.slice(11, 19)}Z`;
}

export function list(values: readonly string[]): string {
  return values.length === 0 ? "-" : values.join(" ");
}

export function limits(windows: RateLimitWindow[] | null | undefined): string {
  if (windows === null || windows === undefined) return "(plan's)";
  if (windows.length === 0) return "-";
  return windows
    .map(
      (w) =>
        `${w.name}=${w.limit}/${typeof w.window === "number" ? `${w.window}s` : w.window}${w.per === "org" ? "/org" : ""}`,
    )
    .join(" ");
}

export function quotaText(quota: Quota | null | undefined, inherited = false): string {
  if (quota === null || quota === undefined) return inherited ? "(plan's)" : "-";
  return `${quota.limit}/${quota.period}`;
}

export function keyDisplay(key: Pick<ApiKeyInfo, "start" | "last4">): string {
  return printable(`${key.start}…${key.last4}`);
}

export function keyDetails(key: ApiKeyInfo): string {
  return details([
    ["id", key.id],
    ["name", key.name],
    ["org", key.orgId],
    ["key", keyDisplay(key)],
    ["status", key.status],
    ["environment", key.environment],
    ["scopes", list(key.scopes)],
    ["rate limits", limits(key.rateLimits)],
    ["quota", quotaText(key.quota, true)],
    ["expires", when(key.expiresAt)],
    ["replaced by", key.replacedById],
    ["grace ends", key.sunsetAt ? when(key.sunsetAt) : null],
    [
      "revoked",
      key.revokedAt ? `${when(key.revokedAt)}${key.revokedReason ? ` (${key.revokedReason})` : ""}` : null,
    ],
    [
      "created",
      `${when(key.createdAt)} by ${key.createdBy.type}${key.createdBy.id ? `:${key.createdBy.id}` : ""}`,
    ],
    ["last used", when(key.lastUsedAt)],
    ["metadata", Object.keys(key.metadata).length > 0 ? JSON.stringify(key.metadata) : null],
  ]);
}

export function keyRows(keys: ApiKeyInfo[]): string {
  return table(
    ["ID", "NAME", "STATUS", "KEY", "SCOPES", "EXPIRES", "LAST USED", "CREATED"],
    keys.map((k) => [
      k.id,
      k.name,
      k.status,
      keyDisplay(k),
      list(k.scopes),
      when(k.expiresAt),
      when(k.lastUsedAt),
      when(k.createdAt),
    ]),
  );
}

export function planRows(plans: Plan[]): string {
  return table(
    ["ID", "NAME", "SCOPES", "RATE LIMITS", "QUOTA", "ENTITLEMENTS"],
    plans.map((p) => [
      p.id,
      p.name,
      list(p.scopes),
      limits(p.rateLimits),
      quotaText(p.quota),
      list(p.entitlements),
    ]),
  );
}

export function orgRows(orgs: Org[]): string {
  return table(
    ["ID", "NAME", "PLAN", "STATUS", "CREATED"],
    orgs.map((o) => [
      o.id,
      o.name,
      o.planId ?? "-",
      o.suspendedAt === null ? "active" : "suspended",
      when(o.createdAt),
    ]),
  );
}
