/** The events of the key lifecycle, built from the rows keys.ts already has (one line there each). */
import type { Actor } from "../types.js";
import type { EventInput } from "./events.js";

interface KeyRow {
  id: string;
  orgId: string;
  name: string;
  environment: string;
  scopes: string[];
  expiresAt: Date | null;
}

function actorRef(actor: Actor): { type: string; id: string | null } {
  return { type: actor.type, id: actor.id ?? null };
}

export function keyCreated(
  key: KeyRow,
  actor: Actor,
  rotatedFrom: string | null = null,
): EventInput<"key.created"> {
  return {
    type: "key.created",
    orgId: key.orgId,
    keyId: key.id,
    data: {
      keyId: key.id,
      orgId: key.orgId,
      name: key.name,
      environment: key.environment,
      scopes: [...key.scopes],
      expiresAt: key.expiresAt?.toISOString() ?? null,
      rotatedFrom,
      actor: actorRef(actor),
    },
  };
}

export function keyRotated(
  key: { id: string; orgId: string },
  replacedBy: string,
  sunsetAt: Date,
  actor: Actor,
): EventInput<"key.rotated"> {
  return {
    type: "key.rotated",
    orgId: key.orgId,
    keyId: key.id,
    data: {
      keyId: key.id,
      orgId: key.orgId,
      replacedBy,
      sunsetAt: sunsetAt.toISOString(),
      actor: actorRef(actor),
    },
  };
}

export function keyRevoked(
  key: { id: string; orgId: string },
  reason: string | null,
  actor: Actor,
): EventInput<"key.revoked"> {
  return {
    type: "key.revoked",
    orgId: key.orgId,
    keyId: key.id,
    data: { keyId: key.id, orgId: key.orgId, reason, actor: actorRef(actor) },
  };
}
