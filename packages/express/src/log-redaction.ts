/**
 * Request loggers for Express log the URL (and pino-http the headers and parsed query) of every
 * request, including one that carried a key in its query string, which Flux Keys refuses but
 * cannot un-log. These helpers redact key-like values before they are written:
 *
 *   app.use(pinoHttp({ serializers: pinoHttpSerializers() }));
 *   morgan.token("url", morganUrl());
 */
import { type RedactOptions, redactHeaders, redactQuery, redactUrl } from "@flux-keys/core";

interface SerializedRequest {
  url?: unknown;
  query?: unknown;
  headers?: Record<string, unknown>;
}

/**
 * `serializers` for pino-http: its request serializer's output with key-like query values (in
 * `url` and `query`) and the credential headers (`Authorization`, `X-API-Key`, `Cookie`) redacted.
 */
export function pinoHttpSerializers(options: RedactOptions & { headers?: readonly string[] } = {}) {
  return {
    req<T extends SerializedRequest>(req: T): T {
      // pino-http hands over a fresh object per log line: changing it changes nothing else.
      if (typeof req.url === "string") req.url = redactUrl(req.url, options);
      if (req.query !== undefined) req.query = redactQuery(req.query, options);
      if (req.headers !== undefined) req.headers = redactHeaders(req.headers, options.headers);
      return req;
    },
  };
}

/** morgan's `:url` (`originalUrl`, else `url`) with key-like query values redacted. */
export function morganUrl(options: RedactOptions = {}) {
  return (req: { originalUrl?: string; url?: string }): string =>
    redactUrl(req.originalUrl ?? req.url ?? "", options);
}

export { redactUrl };
