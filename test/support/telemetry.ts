/**
 * The real OpenTelemetry SDKs, set up for tests: an in-memory span exporter and a metric reader
 * that is collected on demand, with helpers to read a metric's data points by attributes.
 */
import type { Attributes } from "@opentelemetry/api";
import { DataPointType, MeterProvider, MetricReader } from "@opentelemetry/sdk-metrics";
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  type ReadableSpan,
  SimpleSpanProcessor,
} from "@opentelemetry/sdk-trace-base";

/** Collected when the test asks (no timer). */
class OnDemandReader extends MetricReader {
  protected override onForceFlush(): Promise<void> {
    return Promise.resolve();
  }
  protected override onShutdown(): Promise<void> {
    return Promise.resolve();
  }
}

export interface Point {
  attributes: Attributes;
  /** Sum for counters, last value for gauges, count for histograms. */
  value: number;
  /** Histograms: the sum of recorded values. */
  sum?: number;
}

export class TestTelemetry {
  readonly spans = new InMemorySpanExporter();
  readonly tracerProvider = new BasicTracerProvider({
    spanProcessors: [new SimpleSpanProcessor(this.spans)],
  });
  private readonly reader = new OnDemandReader();
  readonly meterProvider = new MeterProvider({ readers: [this.reader] });

  finished(name = "flux.verify"): ReadableSpan[] {
    return this.spans.getFinishedSpans().filter((span) => span.name === name);
  }

  /** The data points of one metric (empty when it recorded nothing). */
  async points(name: string): Promise<Point[]> {
    const { resourceMetrics } = await this.reader.collect();
    const points: Point[] = [];
    for (const scope of resourceMetrics.scopeMetrics) {
      for (const metric of scope.metrics) {
        if (metric.descriptor.name !== name) continue;
        for (const point of metric.dataPoints) {
          if (metric.dataPointType === DataPointType.HISTOGRAM) {
            const histogram = point.value as { count: number; sum?: number };
            points.push({ attributes: point.attributes, value: histogram.count, sum: histogram.sum ?? 0 });
          } else {
            points.push({ attributes: point.attributes, value: point.value as number });
          }
        }
      }
    }
    return points;
  }

  /** The value of the point whose attributes are exactly `attributes` (0 when absent). */
  async value(name: string, attributes: Attributes): Promise<number> {
    const wanted = JSON.stringify(sorted(attributes));
    const point = (await this.points(name)).find((p) => JSON.stringify(sorted(p.attributes)) === wanted);
    return point?.value ?? 0;
  }

  async shutdown(): Promise<void> {
    await this.tracerProvider.shutdown();
    await this.meterProvider.shutdown();
  }
}

function sorted(attributes: Attributes): Attributes {
  return Object.fromEntries(Object.entries(attributes).sort(([a], [b]) => a.localeCompare(b)));
}
