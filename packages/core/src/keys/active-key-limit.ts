/** The most active keys an org may hold, checked inside the transaction that issues one. */
import { FluxError } from "../errors.js";
import type { Prisma } from "../generated/prisma/client.js";

/**
 * Throws `key_limit_reached` when the org already holds `max` active keys (not revoked, not
 * expired, not replaced by a rotation: the same as `list({ status: 'active' })`). The org's row is
 * locked first, so two concurrent issues for one org are counted one after the other.
 */
export async function assertActiveKeyRoom(
  tx: Prisma.TransactionClient,
  orgId: string,
  max: number,
  nowMs: number,
): Promise<void> {
  await tx.$queryRaw`SELECT 1 FROM "flux_orgs" WHERE "id" = ${orgId} FOR UPDATE`;
  const now = new Date(nowMs);
  const active = await tx.apiKey.count({
    where: {
      orgId,
      revokedAt: null,
      sunsetAt: null,
      OR: [{ expiresAt: null }, { expiresAt: { gt: now } }],
    },
  });
  if (active >= max) {
    throw new FluxError("key_limit_reached", {
      detail: `The organization already holds ${active} active keys (at most ${max}); revoke one first.`,
      extensions: { limit: max },
    });
  }
}
