import type { MeterProvider, TracerProvider } from "@opentelemetry/api";
import { FluxConfigError } from "../errors.js";

export interface TelemetryOptions {
  /**
   * Where `flux.verify` spans go. The global provider is looked up at every verification, so an
   * SDK registered after `createFlux` is used too.
   * @default the global tracer provider (`trace.getTracerProvider()`): a no-op until an SDK registers
   */
  tracerProvider?: TracerProvider;
  /**
   * Where the `flux.*` metrics go. Read once, in `createFlux`: register the SDK's meter provider
   * before it, or pass it here.
   * @default the global meter provider (`metrics.getMeterProvider()`)
   */
  meterProvider?: MeterProvider;
  /**
   * Optional metric attributes: `flux.org.id` and `flux.plan.id` on verifications and limiter
   * decisions. One series per org can be many series. Key ids are never metric attributes.
   * @default { org: false, plan: false }
   */
  attributes?: { org?: boolean; plan?: boolean };
}

export interface ResolvedTelemetryOptions {
  tracerProvider: TracerProvider | undefined;
  meterProvider: MeterProvider | undefined;
  attributes: { org: boolean; plan: boolean };
}

const KNOWN = new Set(["tracerProvider", "meterProvider", "attributes"]);
const ATTRIBUTES_KNOWN = new Set(["org", "plan"]);

export function resolveTelemetryOptions(options: TelemetryOptions = {}): ResolvedTelemetryOptions {
  if (typeof options !== "object" || options === null) {
    throw new FluxConfigError("invalid_option", "telemetry must be an object.");
  }
  for (const name of Object.keys(options)) {
    if (!KNOWN.has(name)) throw new FluxConfigError("unknown_option", `Unknown option 'telemetry.${name}'.`);
  }
  const attributes = options.attributes ?? {};
  for (const name of Object.keys(attributes)) {
    if (!ATTRIBUTES_KNOWN.has(name)) {
      throw new FluxConfigError("unknown_option", `Unknown option 'telemetry.attributes.${name}'.`);
    }
  }
  for (const [name, value] of Object.entries(attributes)) {
    if (typeof value !== "boolean") {
      throw new FluxConfigError("invalid_option", `telemetry.attributes.${name} must be a boolean.`);
    }
  }
  if (options.tracerProvider !== undefined && typeof options.tracerProvider?.getTracer !== "function") {
    throw new FluxConfigError("invalid_option", "telemetry.tracerProvider must be a TracerProvider.");
  }
  if (options.meterProvider !== undefined && typeof options.meterProvider?.getMeter !== "function") {
    throw new FluxConfigError("invalid_option", "telemetry.meterProvider must be a MeterProvider.");
  }
  return {
    tracerProvider: options.tracerProvider,
    meterProvider: options.meterProvider,
    attributes: { org: attributes.org ?? false, plan: attributes.plan ?? false },
  };
}
