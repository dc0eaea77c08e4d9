import type { KeyContext } from "@flux-keys/core";
import { ApiKey, Scopes } from "@flux-keys/nestjs";
import { Controller, Get } from "@nestjs/common";
// biome-ignore lint/style/useImportType: decorator metadata needs the class itself at run time
import { EventsService } from "./events.service";

@Controller("v1")
export class EventsController {
  // Injected by type: only decorator metadata (emitDecoratorMetadata) tells Nest what to inject.
  constructor(private readonly events: EventsService) {}

  @Scopes("read:events")
  @Get("events")
  list(@ApiKey() key: KeyContext) {
    return this.events.list(key.orgId);
  }
}
