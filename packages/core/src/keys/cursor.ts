/** Listing cursors: opaque to callers, `(created_at, id)` of the last key of a page inside. */
import { FluxError } from "../errors.js";
import { ID_PATTERN } from "../validation.js";

export function encodeCursor(createdAt: Date, id: string): string {
  return Buffer.from(`${createdAt.getTime()}|${id}`).toString("base64url");
}

export function decodeCursor(cursor: string): { createdAt: Date; id: string } {
  const [ms, id] = Buffer.from(String(cursor), "base64url").toString("utf8").split("|");
  if (!ms || !id || !/^\d{1,15}$/.test(ms) || !ID_PATTERN.test(id)) {
    throw new FluxError("invalid_request", { detail: "cursor is not valid." });
  }
  return { createdAt: new Date(Number(ms)), id };
}
