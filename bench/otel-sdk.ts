/**
 * The OpenTelemetry SDK as an app would register it, for the `--otel` runs: a tracer provider
 * whose batch processor drops the spans (no exporter cost beyond the SDK's own), and a meter
 * provider with a periodic reader. Registered globally, before `createFlux`.
 */
import { metrics, trace } from "@opentelemetry/api";
import {
  AggregationTemporality,
  InMemoryMetricExporter,
  MeterProvider,
  PeriodicExportingMetricReader,
} from "@opentelemetry/sdk-metrics";
import { BasicTracerProvider, BatchSpanProcessor } from "@opentelemetry/sdk-trace-base";

export function registerOtelSdk(): void {
  const dropped = {
    export: (_spans: unknown, done: (result: { code: 0 }) => void) => done({ code: 0 }),
    shutdown: async () => {},
  };
  trace.setGlobalTracerProvider(
    new BasicTracerProvider({ spanProcessors: [new BatchSpanProcessor(dropped)] }),
  );
  const exporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
  metrics.setGlobalMeterProvider(
    new MeterProvider({
      readers: [new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 1_000 })],
    }),
  );
  setInterval(() => exporter.reset(), 5_000).unref();
}
