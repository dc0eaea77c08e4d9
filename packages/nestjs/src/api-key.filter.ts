import { type ArgumentsHost, Catch, type ExceptionFilter } from "@nestjs/common";
import { ApiKeyDeniedException } from "./api-key.exception.js";

interface RawResponse {
  statusCode: number;
  setHeader(name: string, value: string): void;
  end(body: string): void;
}

/** Sends ApiKeyDeniedException as problem details, on the Express and the Fastify platform. */
@Catch(ApiKeyDeniedException)
export class ApiKeyExceptionFilter implements ExceptionFilter<ApiKeyDeniedException> {
  catch(exception: ApiKeyDeniedException, host: ArgumentsHost): ApiKeyDeniedException | undefined {
    // GraphQL (and other non-HTTP contexts) turn a returned exception into their own error.
    if (host.getType() !== "http") return exception;
    const response = host.switchToHttp().getResponse<{ raw?: RawResponse } & RawResponse>();
    const raw: RawResponse = response.raw ?? response;
    raw.statusCode = exception.getStatus();
    for (const [name, value] of Object.entries(exception.headers)) raw.setHeader(name, value);
    raw.end(JSON.stringify(exception.getResponse()));
    return undefined;
  }
}
