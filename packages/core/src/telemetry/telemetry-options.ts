/** The `telemetry` options of `createFlux`: one schema holds their names, defaults and checks. */
import type { MeterProvider, TracerProvider } from "@opentelemetry/api";
import { z } from "zod";
import { instance, section } from "../options-schema.js";

const has = (method: string) => (value: unknown) =>
  typeof value === "object" &&
  value !== null &&
  typeof (value as Record<string, unknown>)[method] === "function";

const telemetrySection = section({
  /**
   * Where `flux.verify` spans go. The global provider is looked up at every verification, so an
   * SDK registered after `createFlux` is used too.
   * @default the global tracer provider (`trace.getTracerProvider()`): a no-op until an SDK registers
   */
  tracerProvider: instance<TracerProvider>(has("getTracer"), "must be a TracerProvider.").optional(),
  /**
   * Where the `flux.*` metrics go. Read once, in `createFlux`: register the SDK's meter provider
   * before it, or pass it here.
   * @default the global meter provider (`metrics.getMeterProvider()`)
   */
  meterProvider: instance<MeterProvider>(has("getMeter"), "must be a MeterProvider.").optional(),
  /**
   * Optional metric attributes: `flux.org.id` and `flux.plan.id` on verifications and limiter
   * decisions. One series per org can be many series. Key ids are never metric attributes.
   * @default { org: false, plan: false }
   */
  attributes: section({
    org: z.boolean({ error: "must be a boolean." }).prefault(false),
    plan: z.boolean({ error: "must be a boolean." }).prefault(false),
  }).prefault({}),
});

export type TelemetryOptions = z.input<typeof telemetrySection>;

export const telemetryOptionsSchema = telemetrySection.prefault({});

export type ResolvedTelemetryOptions = z.output<typeof telemetryOptionsSchema>;
