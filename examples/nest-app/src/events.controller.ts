import type { KeyContext } from "@flux-keys/core";
import type { EventStore } from "@flux-keys/example-shared";
import { ApiKey, Entitlement, Public, Scopes } from "@flux-keys/nestjs";
import {
  BadRequestException,
  Body,
  Controller,
  Get,
  HttpCode,
  Inject,
  NotFoundException,
  Param,
  Post,
} from "@nestjs/common";

export const EVENTS = Symbol("EVENTS");

@Controller()
export class HealthController {
  @Public()
  @Get("health")
  health() {
    return { ok: true };
  }
}

@Controller("v1")
export class EventsController {
  constructor(@Inject(EVENTS) private readonly events: EventStore) {}

  @Scopes("read:events")
  @Get("events")
  list(@ApiKey() key: KeyContext) {
    return { data: this.events.list(key.orgId) };
  }

  @Scopes("read:events")
  @Get("events/:id")
  get(@ApiKey() key: KeyContext, @Param("id") id: string) {
    const event = this.events.get(key.orgId, id);
    if (event === undefined) throw new NotFoundException();
    return event;
  }

  @Scopes("write:events")
  @Post("events")
  create(@ApiKey() key: KeyContext, @Body() body: unknown) {
    const event = this.events.add(key.orgId, body);
    if (event === null) throw new BadRequestException("Invalid event");
    return event;
  }

  @Entitlement("bulk_export")
  @Post("exports")
  @HttpCode(202)
  export(@ApiKey() key: KeyContext) {
    return { export: "queued", orgId: key.orgId };
  }

  @Scopes("read:events")
  @Get("boom")
  boom(): never {
    throw new Error("handler failure");
  }
}
