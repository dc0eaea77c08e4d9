/**
 * Entitlements of an org with I/O (the pure `checkForKey` answers from a KeyContext): whether one
 * is in force, and the list of them with where each comes from.
 */
import { guard, type PrismaClient } from "../database.js";
import { effectiveEntitlements } from "../entitlements.js";
import { FluxError } from "../errors.js";

export interface EntitlementEntry {
  name: string;
  /** False when an org override withdraws a plan entitlement. */
  granted: boolean;
  /** `plan`: the org's plan includes it; `override`: an org grant or withdrawal decides it. */
  source: "plan" | "override";
  /** When the override ends (the plan's value applies again); null for none or for the plan. */
  expiresAt: Date | null;
}

async function load(prisma: PrismaClient, orgId: string) {
  const org = await guard(() =>
    prisma.org.findUnique({
      where: { id: String(orgId) },
      select: { plan: { select: { entitlements: true } }, entitlements: true },
    }),
  );
  if (org === null) throw new FluxError("not_found", { detail: "No such org." });
  return org;
}

/** Whether an entitlement is in force for an org now: the plan's, plus grants, minus withdrawals. */
export async function checkEntitlement(
  prisma: PrismaClient,
  orgId: string,
  name: string,
  now: number,
): Promise<boolean> {
  const org = await load(prisma, orgId);
  const overrides = org.entitlements.map((o) => ({
    name: o.name,
    granted: o.granted,
    expiresAt: o.expiresAt === null ? null : o.expiresAt.getTime(),
  }));
  return effectiveEntitlements(org.plan?.entitlements ?? [], overrides, now).names.includes(name);
}

/** Every entitlement the plan or an unexpired override mentions, by name, with its source. */
export async function listEntitlements(
  prisma: PrismaClient,
  orgId: string,
  now: number,
): Promise<EntitlementEntry[]> {
  const org = await load(prisma, orgId);
  const entries = new Map<string, EntitlementEntry>();
  for (const name of org.plan?.entitlements ?? []) {
    entries.set(name, { name, granted: true, source: "plan", expiresAt: null });
  }
  for (const override of org.entitlements) {
    if (override.expiresAt !== null && override.expiresAt.getTime() <= now) continue;
    entries.set(override.name, {
      name: override.name,
      granted: override.granted,
      source: "override",
      expiresAt: override.expiresAt,
    });
  }
  return [...entries.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}
