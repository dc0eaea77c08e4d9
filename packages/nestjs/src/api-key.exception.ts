import type { DenialResponse, FluxError } from "@flux-keys/core";
import { HttpException } from "@nestjs/common";

/**
 * A Flux Keys denial. `getResponse()` is the RFC 9457 problem document; `headers` the fields core
 * wants sent (WWW-Authenticate, Retry-After, RateLimit). The module's filter sends it as
 * `application/problem+json`; catch it in a filter of your own to shape it differently.
 */
export class ApiKeyDeniedException extends HttpException {
  readonly code: FluxError["code"];
  readonly headers: Record<string, string>;
  constructor(
    readonly error: FluxError,
    response: DenialResponse,
  ) {
    super(response.body, response.status, { description: error.title });
    this.code = error.code;
    this.headers = response.headers;
  }
}
