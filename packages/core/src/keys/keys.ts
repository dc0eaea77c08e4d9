/**
 * `flux.keys`: one object over the key domain. Verification (keys/verify.ts) is its base class,
 * so the hot path runs without a delegating call; administration (keys/admin.ts), rotation
 * (keys/rotation.ts) and insights (keys/insights.ts) are delegated to.
 */
import type { Duration } from "../duration.js";
import type { Runtime } from "../runtime.js";
import type { Actor, ApiKeyInfo, KeyContext, Page } from "../types.js";
import { KeyAdmin, type KeyChanges, type KeyListQuery, type RevokedKey } from "./admin.js";
import { KeyBuilder, type KeySpec } from "./builder.js";
import {
  type GraceUsage,
  graceUsage,
  observeRequest,
  type ScopeSuggestion,
  type SeenRequest,
  suggestScopes,
} from "./insights.js";
import { type RotatedKey, rotateKey } from "./rotation.js";
import type { IssuedKey } from "./rows.js";
import { KeyVerification } from "./verify.js";

export type { FluxErrorCode } from "../errors.js";
export type { KeyChanges, KeyListQuery, RevokedKey } from "./admin.js";
export type { GraceUsage, ScopeSuggestion } from "./insights.js";
export type { RotatedKey } from "./rotation.js";
export type { IssuedKey } from "./rows.js";
export type { CheckResult, DeniedKey, VerifyOptions } from "./verify.js";

export class Keys extends KeyVerification {
  private readonly admin: KeyAdmin;

  constructor(rt: Runtime) {
    super(rt);
    this.admin = new KeyAdmin(rt, (secret) => this.digest(secret));
  }

  /** Starts issuing a key: `flux.keys.create().forOrg(id).withScopes([...]).issue()`. */
  create(): KeyBuilder {
    return new KeyBuilder(this);
  }

  /**
   * Notes what an adapter saw of a verified request: the scopes its route required (for
   * `suggestScopes`) and, while the key is in a rotation grace, the client that used it (for
   * `graceUsage`). Buffered in memory; no I/O here.
   */
  observe(context: KeyContext, seen: SeenRequest): void {
    observeRequest(this.rt, context, seen);
  }

  /**
   * Who still uses a key during its rotation grace: the clients (address and user agent, most
   * recent first, at most `limit`) and their calls since the rotation.
   */
  async graceUsage(id: string, options: { limit?: number } = {}): Promise<GraceUsage> {
    return graceUsage(this.rt, await this.get(id), options);
  }

  /**
   * Least privilege: the scopes the key actually exercised (as required by the routes it called)
   * since `since`, and the narrower set it could hold instead of its current scopes.
   */
  async suggestScopes(id: string, options: { since?: Date } = {}): Promise<ScopeSuggestion> {
    return suggestScopes(this.rt, await this.get(id), options);
  }

  /**
   * The key a presented secret belongs to, whatever its state (revoked, expired…), or null; for
   * leak reports and support tooling. Nothing is consumed and no cache is touched.
   */
  findBySecret(secret: string): Promise<ApiKeyInfo | null> {
    return this.admin.findBySecret(secret);
  }

  get(id: string): Promise<ApiKeyInfo> {
    return this.admin.get(id);
  }

  /** An org's keys, newest first. */
  list(query: KeyListQuery): Promise<Page<ApiKeyInfo>> {
    return this.admin.list(query);
  }

  update(id: string, changes: KeyChanges, options: { actor?: Actor } = {}): Promise<ApiKeyInfo> {
    return this.admin.update(id, changes, options);
  }

  /**
   * Revokes a key at once, and with it the keys it replaced that are still in their rotation
   * grace (its lineage), each with its own audit event; `{ lineage: false }` revokes this key
   * only. `revokedWith` lists the predecessors revoked by this call. Idempotent: revoking a
   * revoked key returns it unchanged (its predecessors still in grace are revoked then).
   */
  revoke(
    id: string,
    options: { reason?: string; actor?: Actor; lineage?: boolean } = {},
  ): Promise<RevokedKey> {
    return this.admin.revoke(id, options);
  }

  /**
   * Issues a successor with the same org, scopes, limits, quota and metadata. The old key keeps
   * verifying (with `rotation` in its context) until the grace period ends, then fails with
   * `key_expired`. A key has at most one successor: a concurrent rotate or revoke loses with
   * `key_conflict`.
   */
  rotate(
    id: string,
    options: { gracePeriod: Duration; actor?: Actor; expiresAt?: Date | null },
  ): Promise<RotatedKey> {
    return rotateKey(this.rt, (secret) => this.digest(secret), id, options);
  }

  /** @internal Used by KeyBuilder. */
  issue(spec: KeySpec): Promise<IssuedKey> {
    return this.admin.issue(spec);
  }
}
