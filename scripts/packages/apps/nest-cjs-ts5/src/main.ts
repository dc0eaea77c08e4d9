import "reflect-metadata";
import type { Flux } from "@flux-keys/core";
import { FLUX } from "@flux-keys/nestjs";
import { NestFactory } from "@nestjs/core";
import { AppModule } from "./app.module";

async function bootstrap() {
  const app = await NestFactory.create(AppModule, { logger: ["error"] });
  app.enableShutdownHooks();
  const flux = app.get<Flux>(FLUX);
  await flux.orgs.create({ id: "acme", name: "Acme" });
  const { secret } = await flux.keys.create().forOrg("acme").withScopes(["read:events"]).issue();
  await app.listen(0, "127.0.0.1");
  const address = app.getHttpServer().address();
  console.log(`FLUX_APP_READY ${JSON.stringify({ port: address.port, secret })}`);
}
bootstrap();
