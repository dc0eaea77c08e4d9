/** The events API's OpenAPI document, built by @nestjs/swagger with Flux Keys' routes described. */
import { createFluxKeysDocument } from "@flux-keys/nestjs/swagger";
import type { INestApplication } from "@nestjs/common";
import { DocumentBuilder } from "@nestjs/swagger";

export function apiDocument(app: INestApplication) {
  const config = new DocumentBuilder()
    .setOpenAPIVersion("3.1.0")
    .setTitle("Events API (Nest)")
    .setVersion("1.0.0")
    .build();
  return createFluxKeysDocument(app, config);
}
