/**
 * Web handlers (the portal, GitHub alerts) on node:http: the conversion every Node adapter needs
 * (a full URL, the method, the headers, the body as a stream, the peer address), and a standalone
 * server.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { Readable } from "node:stream";
import type { TLSSocket } from "node:tls";
import type { PortalRequestContext } from "../portal/portal-options.js";

export type WebHandler = (request: Request, context?: PortalRequestContext) => Promise<Response>;

/**
 * The Host header when it can be a URL authority (name or address, optional port), else
 * `localhost`: a hostile Host (`a b`, `x:99999`, `a@b`, `a/b`) must not make the URL unparseable
 * (a 500) or move the path the handler sees.
 */
function authority(host: string | undefined): string {
  const pattern = /^(?:[A-Za-z0-9._-]+|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?$/;
  if (host === undefined || !pattern.test(host)) return "localhost";
  try {
    new URL(`http://${host}/`);
    return host;
  } catch {
    return "localhost";
  }
}

/** The Web Request of a Node request. `url` is the path as received (pass `originalUrl` under Express). */
export function toWebRequest(req: IncomingMessage, url = req.url ?? "/"): Request {
  const encrypted = Boolean((req.socket as TLSSocket).encrypted);
  const host = authority(req.headers.host);
  const headers = new Headers();
  for (const [name, value] of Object.entries(req.headers)) {
    if (value === undefined) continue;
    if (Array.isArray(value)) for (const v of value) headers.append(name, v);
    else headers.set(name, value);
  }
  const method = req.method ?? "GET";
  const hasBody = method !== "GET" && method !== "HEAD";
  let body: string | Uint8Array | ReadableStream<Uint8Array> | undefined;
  if (hasBody) {
    const parsed = parsedBody(req);
    if (parsed !== undefined) {
      body = parsed;
      headers.delete("content-length");
    } else {
      body = Readable.toWeb(req) as ReadableStream<Uint8Array>;
    }
  }
  return new Request(`${encrypted ? "https" : "http"}://${host}${url}`, {
    method,
    headers,
    ...(body === undefined ? {} : { body, duplex: "half" }),
  } as RequestInit);
}

/**
 * The body of a request a framework's body parser already read (Express's `express.json()`, Nest's
 * default parsers): the raw bytes when the framework kept them (Nest's `rawBody: true` sets
 * `req.rawBody`), else re-encoded; undefined when the stream is still unread. Handlers that verify a
 * signature over the raw bytes must be mounted before any body parser, or under `rawBody: true`.
 */
function parsedBody(req: IncomingMessage): string | Uint8Array | undefined {
  const {
    body,
    _body: consumed,
    rawBody,
  } = req as IncomingMessage & {
    body?: unknown;
    _body?: boolean;
    rawBody?: unknown;
  };
  if (rawBody instanceof Uint8Array && (consumed === true || req.readableEnded)) return rawBody;
  if (body === undefined || !(consumed === true || req.readableEnded)) return undefined;
  if (typeof body === "string") return body;
  if (body instanceof Uint8Array) return body;
  const type = req.headers["content-type"] ?? "";
  if (type.includes("application/x-www-form-urlencoded") && typeof body === "object" && body !== null) {
    return new URLSearchParams(body as Record<string, string>).toString();
  }
  return JSON.stringify(body);
}

/** Writes a Web Response to a Node response (each Set-Cookie separately). */
export async function sendWebResponse(response: Response, res: ServerResponse): Promise<void> {
  const headers: Record<string, string | string[]> = {};
  response.headers.forEach((value, name) => {
    if (name !== "set-cookie") headers[name] = value;
  });
  const cookies = response.headers.getSetCookie();
  if (cookies.length > 0) headers["set-cookie"] = cookies;
  // A handler that stopped reading the body (e.g. a 413 past its limit) leaves the rest unread:
  // the connection cannot carry another request, so it is closed after this answer.
  if (res.req !== undefined && !res.req.complete) headers.connection = "close";
  res.writeHead(response.status, headers);
  if (response.body === null) {
    res.end();
    return;
  }
  const body = Buffer.from(await response.arrayBuffer());
  res.end(body);
}

/**
 * Runs a Web handler for one Node request and writes its answer: the one conversion every adapter
 * mount uses. `url` is the path as received (Express: `originalUrl`, which keeps the mount path).
 */
export async function serveWeb(
  handler: WebHandler,
  req: IncomingMessage,
  res: ServerResponse,
  url = req.url ?? "/",
): Promise<void> {
  const response = await handler(toWebRequest(req, url), { remoteAddress: req.socket.remoteAddress ?? null });
  await sendWebResponse(response, res);
}

/** A node:http listener around a Web handler (a failure answers a bare 500). */
export function toNodeListener(handler: WebHandler) {
  return (req: IncomingMessage, res: ServerResponse): void => {
    serveWeb(handler, req, res).catch(() => {
      if (!res.headersSent) res.writeHead(500, { "content-type": "text/plain" });
      res.end("Internal Server Error");
    });
  };
}

/** Serves a portal handler on its own (loopback by default; port 0 picks a free one). */
export async function servePortal(
  handler: WebHandler,
  options: { port?: number; host?: string } = {},
): Promise<{ url: string; server: Server; close(): Promise<void> }> {
  const host = options.host ?? "127.0.0.1";
  const server = createServer(toNodeListener(handler));
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 0, host, () => resolve());
  });
  const address = server.address();
  const port = typeof address === "object" && address !== null ? address.port : options.port;
  const shown = host.includes(":") ? `[${host}]` : host;
  return {
    url: `http://${shown}:${port}`,
    server,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
