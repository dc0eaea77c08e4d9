/** The portal's JSON API, same-origin, with the page's CSRF token on every state-changing call. */
import type { PortalConfig } from "./types.js";

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly body: { detail?: string; title?: string } | null,
  ) {
    super(body?.detail || body?.title || `Request failed (${status})`);
  }
}

export type Method = "GET" | "POST" | "PATCH";

export function createApi(config: PortalConfig, onSignedOut: () => void) {
  return async function api<T>(method: Method, path: string, body?: unknown): Promise<T> {
    const headers: Record<string, string> = { Accept: "application/json" };
    if (method !== "GET") headers["X-CSRF-Token"] = config.csrfToken;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const response = await fetch(config.basePath + path, {
      method,
      headers,
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      credentials: "same-origin",
      cache: "no-store",
    });
    const data = await response.json().catch(() => null);
    if (response.status === 401) onSignedOut();
    if (!response.ok) throw new ApiError(response.status, data);
    return data as T;
  };
}

export type Api = ReturnType<typeof createApi>;
