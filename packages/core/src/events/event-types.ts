/** The lifecycle events Flux Keys emits, in process (`flux.on`) and as webhooks. */

export const LIFECYCLE_EVENT_TYPES = [
  "key.created",
  "key.rotated",
  "key.revoked",
  "key.expiring",
  "key.unused",
  "key.leaked",
  "quota.threshold",
  "ratelimit.exceeded",
] as const;

export type LifecycleEventType = (typeof LIFECYCLE_EVENT_TYPES)[number];

/**
 * One event, as handlers receive it. The webhook body is the same object with `createdAt` as an
 * ISO string. `data` never holds a secret, digest or webhook secret.
 */
export type LifecycleEvent<T extends LifecycleEventType = LifecycleEventType> = {
  [K in T]: {
    /** `evt_…`: the same id in process and in the webhook body. */
    id: string;
    type: K;
    createdAt: Date;
    data: EventData[K];
  };
}[T];

interface KeyRef {
  keyId: string;
  orgId: string;
}

interface ActorRef {
  /** Who did it: `admin`, `user` or `system` and their id (never their address). */
  actor: { type: string; id: string | null };
}

export interface EventData {
  "key.created": KeyRef &
    ActorRef & {
      name: string;
      environment: string;
      scopes: string[];
      expiresAt: string | null;
      /** Set when the key was issued by a rotation. */
      rotatedFrom: string | null;
    };
  "key.rotated": KeyRef & ActorRef & { replacedBy: string; sunsetAt: string };
  "key.revoked": KeyRef & ActorRef & { reason: string | null };
  "key.expiring": KeyRef & { name: string; expiresAt: string; daysLeft: number };
  "key.unused": KeyRef & {
    name: string;
    /** When the key was last used, or null when it never was (then `idleSince` is its creation). */
    lastUsedAt: string | null;
    idleSince: string;
    idleDays: number;
  };
  "key.leaked": KeyRef & Record<string, unknown>;
  "quota.threshold": KeyRef & {
    /** The threshold crossed, as a fraction of the limit (0.8, 1). */
    threshold: number;
    limit: number;
    used: number;
    period: "day" | "month" | "total";
    /** `d2026-05-04`, `m2026-05` or `t`: the quota period this happened in. */
    periodId: string;
  };
  "ratelimit.exceeded": KeyRef & {
    window: string;
    limit: number;
    windowSeconds: number;
    per: string;
    retryAfter: number;
  };
}

export type LifecycleHandler<T extends LifecycleEventType = LifecycleEventType> = (
  event: LifecycleEvent<T>,
) => void | Promise<void>;

export function isEventType(value: unknown): value is LifecycleEventType {
  return typeof value === "string" && (LIFECYCLE_EVENT_TYPES as readonly string[]).includes(value);
}
