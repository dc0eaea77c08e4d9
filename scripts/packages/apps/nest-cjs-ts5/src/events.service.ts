import { Injectable } from "@nestjs/common";

@Injectable()
export class EventsService {
  list(orgId: string): { org: string } {
    return { org: orgId };
  }
}
