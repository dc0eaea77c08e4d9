import { createParamDecorator, type ExecutionContext, SetMetadata } from "@nestjs/common";
import { graphqlRequest } from "./api-key.guard.js";
import { COST_KEY, ENTITLEMENT_KEY, PUBLIC_KEY, SCOPES_KEY } from "./flux-keys.constants.js";

/** The route (or every route of the controller) needs no API key. */
export const Public = () => SetMetadata(PUBLIC_KEY, true);

/** The key must hold all of these scopes (`resource:action`, `resource:*` and `*` match). */
export const Scopes = (...scopes: string[]) => SetMetadata(SCOPES_KEY, scopes);

/** The key's org must be entitled to this feature (or all of these). */
export const Entitlement = (...names: string[]) => SetMetadata(ENTITLEMENT_KEY, names);

/** Units this route costs against the key's limits and quota. @default 1 */
export const RateLimitCost = (cost: number) => SetMetadata(COST_KEY, cost);

/** The verified key's context (`KeyContext`), or `null` on a `@Public()` route. */
export const ApiKey = createParamDecorator((_data: unknown, context: ExecutionContext) => {
  const request =
    context.getType<string>() === "graphql" ? graphqlRequest(context) : context.switchToHttp().getRequest();
  return request?.apiKey ?? null;
});
