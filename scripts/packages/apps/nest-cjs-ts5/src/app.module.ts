import { FluxKeysModule } from "@flux-keys/nestjs";
import { Module } from "@nestjs/common";
import { EventsController } from "./events.controller";
import { EventsService } from "./events.service";

@Module({
  imports: [FluxKeysModule.forRoot({ fluxOptions: {} })],
  controllers: [EventsController],
  providers: [EventsService],
})
export class AppModule {}
