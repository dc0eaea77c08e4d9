/**
 * Fastify logs `req.url` ("incoming request") before any hook runs, so a key sent in the query
 * string would reach the log although Flux Keys refuses the request. This request serializer is
 * Fastify's own with key-like query values redacted:
 *
 *   Fastify({ logger: { serializers: { req: requestSerializer } } })
 */
import { type RedactOptions, redactUrl } from "@flux-keys/core";
import type { FastifyRequest } from "fastify";

/** Fastify's default request serializer, with `url` redacted (see `redactUrl`). */
export function createRequestSerializer(options: RedactOptions = {}) {
  return (request: FastifyRequest) => ({
    method: request.method,
    url: redactUrl(request.url, options),
    version: acceptVersion(request.headers?.["accept-version"]),
    host: request.host,
    remoteAddress: request.ip,
    remotePort: request.socket?.remotePort,
  });
}

/** The request serializer for keys with the default `flux` prefix. */
export const requestSerializer = createRequestSerializer();

function acceptVersion(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value.join(", ") : value;
}
