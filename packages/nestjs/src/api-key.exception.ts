import type { DenialResponse, FluxError, ProblemDetails } from "@flux-keys/core";
import { HttpException } from "@nestjs/common";

/**
 * A Flux Keys denial. `getResponse()` is the RFC 9457 problem document; `headers` the fields core
 * wants sent (WWW-Authenticate, Retry-After, RateLimit). The module's filter sends it as
 * `application/problem+json`; catch it in a filter of your own to shape it differently.
 */
export class ApiKeyDeniedException extends HttpException {
  readonly code: FluxError["code"];
  readonly headers: Record<string, string>;
  /**
   * Under GraphQL: graphql-js copies an original error's `extensions` into the GraphQL error, so
   * a denied field's error carries the stable `code`, the HTTP `status` and the problem document.
   */
  readonly extensions: { code: FluxError["code"]; status: number; problem: ProblemDetails };
  constructor(
    readonly error: FluxError,
    response: DenialResponse,
  ) {
    super(response.body, response.status, { description: error.title });
    this.message = error.message;
    this.code = error.code;
    this.headers = response.headers;
    this.extensions = { code: error.code, status: response.status, problem: response.body };
  }
}
