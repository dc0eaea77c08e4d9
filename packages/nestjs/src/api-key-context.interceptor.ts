import type { KeyContext } from "@flux-keys/core";
import {
  type CallHandler,
  type ExecutionContext,
  Inject,
  Injectable,
  type NestInterceptor,
} from "@nestjs/common";
import { Observable } from "rxjs";
import { FLUX_KEYS_OPTIONS } from "./flux-keys.constants.js";
import type { FluxKeysModuleOptions } from "./flux-keys.options.js";

/**
 * Runs the handler inside `runWithContext(apiKey, …)` once the guard verified the key: the
 * handler is called on subscription, so everything it awaits stays in that scope.
 */
@Injectable()
export class ApiKeyContextInterceptor implements NestInterceptor {
  constructor(@Inject(FLUX_KEYS_OPTIONS) private readonly options: FluxKeysModuleOptions) {}

  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    const run = this.options.runWithContext;
    if (run === undefined || context.getType() !== "http") return next.handle();
    const apiKey = context.switchToHttp().getRequest<{ apiKey?: KeyContext | null }>().apiKey;
    if (!apiKey) return next.handle();
    return new Observable((subscriber) => {
      let subscription: { unsubscribe(): void } | undefined;
      run(apiKey, () => {
        subscription = next.handle().subscribe(subscriber);
      });
      return () => subscription?.unsubscribe();
    });
  }
}
