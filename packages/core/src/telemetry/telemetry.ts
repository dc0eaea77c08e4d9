/**
 * Traces and metrics through `@opentelemetry/api` only: with no SDK installed every call here
 * lands on the API's no-op objects, and `Keys.check` skips this module entirely (`enabled` is
 * false), so verification costs what it cost without it. With an SDK: a `flux.verify` span per
 * verification (outcome, key / org / plan ids, one event per limiter decision) and the `flux.*`
 * metrics of instruments.ts. Prometheus (prometheus.ts) is one more sink of the same instruments.
 */
import {
  type Attributes,
  createNoopMeter,
  type Meter,
  type MeterProvider,
  metrics,
  ProxyTracerProvider,
  type Span,
  SpanKind,
  type SpanOptions,
  SpanStatusCode,
  type Tracer,
  type TracerProvider,
  trace,
} from "@opentelemetry/api";
import type { CheckResult } from "../keys/keys.js";
import type { KeyRecord } from "../keys/record.js";
import type { RateLimitState } from "../types.js";
import { ATTR, INSTRUMENTS, type InstrumentName, type InstrumentSpec } from "./instruments.js";
import { type Outcome, outcomeOf } from "./outcome.js";
import type { ResolvedTelemetryOptions } from "./telemetry-options.js";

const SCOPE = "@flux-keys/core";
const SCOPE_VERSION = "0.1.0";
const SPAN_NAME = "flux.verify";
const SPAN_OPTIONS: SpanOptions = { kind: SpanKind.INTERNAL };
/** The API's no-op provider: what the global proxy delegates to until an SDK registers. */
const NOOP_TRACER_PROVIDER = new ProxyTracerProvider().getDelegate();

export interface CounterLike {
  add(value: number, attributes?: Attributes): void;
}
export interface HistogramLike {
  record(value: number, attributes?: Attributes): void;
}

/** Where the instruments go: an OpenTelemetry meter, or a Prometheus registry (prometheus.ts). */
export interface MetricSink {
  counter(spec: InstrumentSpec, attributes: readonly string[]): CounterLike;
  histogram(spec: InstrumentSpec, attributes: readonly string[]): HistogramLike;
  /** A gauge or an observable counter, read at collection time. */
  observe(spec: InstrumentSpec, read: () => number): void;
}

/** What a verification in flight carries for its span and metrics. */
export interface VerificationProbe {
  startedAt: number;
  span: Span | null;
  /** The key's record, once identified (denials after this point are attributed to it). */
  record: KeyRecord | null;
  /** How the record was found, for well-formed keys. */
  lookup: "hit" | "miss" | "negative" | null;
}

type LimiterResult = "acquired" | "rejected" | "store_unavailable";

interface Instruments {
  verifications: CounterLike;
  verificationDuration: HistogramLike;
  limiterDecisions: CounterLike;
  cacheLookups: CounterLike;
  heartbeatDuration: HistogramLike;
  usageFlushDuration: HistogramLike;
  webhookDeliveries: CounterLike;
}

type ObservableName = "invalidationLag" | "usageBufferSize" | "usageDropped";

export class Telemetry {
  private readonly sinks: MetricSink[] = [];
  private instruments: Instruments;
  private readonly observables = new Map<ObservableName, () => number | null>();
  private provider: TracerProvider | null = null;
  private tracer: Tracer | null = null;
  private readonly perOrg: readonly string[];
  /** Attributes by outcome (and other small sets), built once: no allocation per request. */
  private readonly shared = new Map<string, Attributes>();
  /** Whether any metric goes anywhere (a real meter, or a Prometheus registry). */
  private metered = false;

  constructor(private readonly options: ResolvedTelemetryOptions) {
    const perOrg: string[] = [];
    if (options.attributes.org) perOrg.push(ATTR.orgId);
    if (options.attributes.plan) perOrg.push(ATTR.planId);
    this.perOrg = perOrg;
    const meter = (options.meterProvider ?? metrics.getMeterProvider()).getMeter(SCOPE, SCOPE_VERSION);
    this.instruments = NOOP_INSTRUMENTS;
    // The API's no-op meter records nothing: leave it out so that `enabled` can stay false.
    if (meter !== createNoopMeter()) this.addSink(otelSink(meter));
  }

  /**
   * Whether a verification must be observed: a metric sink is attached, or a tracer provider that
   * records (the global one is looked up per call: an SDK may register after `createFlux`).
   */
  get enabled(): boolean {
    return this.metered || this.liveTracer() !== null;
  }

  /** Adds a sink (a Prometheus registry); every instrument and observable is created in it. */
  addSink(sink: MetricSink): void {
    this.sinks.push(sink);
    this.metered = true;
    this.instruments = this.build();
    for (const [name, read] of this.observables) observeIn(sink, INSTRUMENTS[name], read);
  }

  /** Registers a value read at collection time (bus lag, usage buffer, dropped calls). */
  observe(name: ObservableName, read: () => number | null): void {
    this.observables.set(name, read);
    for (const sink of this.sinks) observeIn(sink, INSTRUMENTS[name], read);
  }

  startVerification(): VerificationProbe {
    const tracer = this.liveTracer();
    return {
      startedAt: performance.now(),
      span: tracer === null ? null : tracer.startSpan(SPAN_NAME, SPAN_OPTIONS),
      record: null,
      lookup: null,
    };
  }

  endVerification(probe: VerificationProbe, result: CheckResult): void {
    const outcome: Outcome = result.valid ? "allowed" : outcomeOf(result.error.code);
    const record = probe.record;
    const span = probe.span;
    if (this.metered) {
      const attributes = this.attributes(ATTR.outcome, outcome, record);
      this.instruments.verifications.add(1, attributes);
      this.instruments.verificationDuration.record((performance.now() - probe.startedAt) / 1000, attributes);
      if (probe.lookup !== null) {
        this.instruments.cacheLookups.add(1, this.attributes(ATTR.cacheResult, probe.lookup, null));
      }
    }
    if (record !== null) this.limiterDecisions(result, record, span);
    if (span === null) return;
    if (span.isRecording()) {
      span.setAttribute(ATTR.outcome, outcome);
      if (record !== null) {
        span.setAttribute(ATTR.keyId, record.id);
        span.setAttribute(ATTR.orgId, record.orgId);
        if (record.plan !== null) span.setAttribute(ATTR.planId, record.plan.id);
      }
      if (!result.valid) {
        span.setAttribute("error.type", result.error.code);
        // A denial is the component working; an outage is an error.
        if (outcome === "store_down")
          span.setStatus({ code: SpanStatusCode.ERROR, message: result.error.code });
      }
    }
    span.end();
  }

  /** A verification that threw (a bug, not a denial): its span ends as an error. */
  failedVerification(probe: VerificationProbe, error: unknown): void {
    const span = probe.span;
    if (span === null) return;
    span.setStatus({ code: SpanStatusCode.ERROR, message: error instanceof Error ? error.name : "error" });
    span.end();
  }

  /** One heartbeat of the invalidation bus (seconds, answered or lost). */
  heartbeat(seconds: number, ok: boolean): void {
    if (!this.metered) return;
    this.instruments.heartbeatDuration.record(
      seconds,
      this.attributes(ATTR.heartbeatResult, ok ? "ok" : "lost", null),
    );
  }

  /** One usage flush (seconds, written or failed). */
  usageFlushed(seconds: number, ok: boolean): void {
    if (!this.metered) return;
    this.instruments.usageFlushDuration.record(
      seconds,
      this.attributes(ATTR.flushResult, ok ? "ok" : "error", null),
    );
  }

  /** One webhook delivery attempt. */
  webhookDelivery(result: "delivered" | "retrying" | "failed"): void {
    if (!this.metered) return;
    this.instruments.webhookDeliveries.add(1, this.attributes(ATTR.webhookResult, result, null));
  }

  /** Each window (and the quota) the limiter decided on: a metric, and an event on the span. */
  private limiterDecisions(result: CheckResult, record: KeyRecord, span: Span | null): void {
    let state: RateLimitState | null = null;
    let violated: string | null = null;
    let verdict: LimiterResult = "acquired";
    if (result.valid) {
      state = result.context.rateLimit;
    } else {
      const code = result.error.code;
      const extensions = result.error.extensions;
      if (code === "rate_limited" || code === "quota_exceeded") {
        verdict = "rejected";
        violated = typeof extensions?.window === "string" ? extensions.window : null;
        state = (extensions?.rateLimit as RateLimitState | undefined) ?? null;
      } else if (code === "store_unavailable") {
        // The record was read, so the database answered: the limit store did not.
        verdict = "store_unavailable";
      } else {
        return;
      }
    }
    const recording = span?.isRecording() === true ? span : null;
    if (verdict === "acquired") {
      if (state === null) return;
      for (const window of state.windows) {
        this.decided("acquired", window.name, record, recording, window.remaining, window.limit);
      }
      if (state.quota !== null) {
        this.decided("acquired", "quota", record, recording, state.quota.remaining, state.quota.limit);
      }
    } else if (verdict === "rejected") {
      const window = state?.windows.find((candidate) => candidate.name === violated);
      const quota = violated === "quota" ? (state?.quota ?? null) : null;
      this.decided(
        "rejected",
        violated ?? "unknown",
        record,
        recording,
        0,
        window?.limit ?? quota?.limit ?? null,
      );
    } else {
      this.decided("store_unavailable", "*", record, recording, null, null);
    }
  }

  private decided(
    verdict: LimiterResult,
    window: string,
    record: KeyRecord,
    span: Span | null,
    remaining: number | null,
    limit: number | null,
  ): void {
    if (this.metered) {
      const attributes =
        this.perOrg.length === 0
          ? this.pair(ATTR.limiterResult, verdict, ATTR.limiterWindow, window)
          : this.withOrg({ [ATTR.limiterResult]: verdict, [ATTR.limiterWindow]: window }, record);
      this.instruments.limiterDecisions.add(1, attributes);
    }
    if (span === null) return;
    const event: Attributes = { [ATTR.limiterResult]: verdict, [ATTR.limiterWindow]: window };
    if (remaining !== null) event["flux.rate_limiting.remaining"] = remaining;
    if (limit !== null) event["flux.rate_limiting.limit"] = limit;
    span.addEvent("flux.rate_limiting.decision", event);
  }

  /** `{ name: value }` (plus org / plan when asked), shared between requests when it can be. */
  private attributes(name: string, value: string, record: KeyRecord | null): Attributes {
    if (this.perOrg.length > 0 && record !== null && name === ATTR.outcome) {
      return this.withOrg({ [name]: value }, record);
    }
    const id = `${name}\0${value}`;
    let attributes = this.shared.get(id);
    if (attributes === undefined) {
      attributes = Object.freeze({ [name]: value });
      this.shared.set(id, attributes);
    }
    return attributes;
  }

  private pair(a: string, aValue: string, b: string, bValue: string): Attributes {
    const id = `${a}\0${aValue}\0${b}\0${bValue}`;
    let attributes = this.shared.get(id);
    if (attributes === undefined) {
      // Window names come from configuration (plans and keys): a bounded set.
      if (this.shared.size > 10_000) this.shared.clear();
      attributes = Object.freeze({ [a]: aValue, [b]: bValue });
      this.shared.set(id, attributes);
    }
    return attributes;
  }

  private withOrg(attributes: Attributes, record: KeyRecord): Attributes {
    if (this.options.attributes.org) attributes[ATTR.orgId] = record.orgId;
    if (this.options.attributes.plan) attributes[ATTR.planId] = record.plan?.id ?? "";
    return attributes;
  }

  /** The tracer, or null while the provider is the API's no-op one. */
  private liveTracer(): Tracer | null {
    const provider = this.options.tracerProvider ?? trace.getTracerProvider();
    if (provider !== this.provider) {
      this.provider = provider;
      this.tracer = provider.getTracer(SCOPE, SCOPE_VERSION);
    }
    const delegate = (provider as Partial<ProxyTracerProvider>).getDelegate?.();
    return delegate === NOOP_TRACER_PROVIDER ? null : this.tracer;
  }

  private build(): Instruments {
    const counter = (name: InstrumentName) =>
      fanOut(this.sinks.map((sink) => sink.counter(INSTRUMENTS[name], this.attributeNames(name))));
    const histogram = (name: InstrumentName) =>
      fanOutHistogram(this.sinks.map((sink) => sink.histogram(INSTRUMENTS[name], this.attributeNames(name))));
    return {
      verifications: counter("verifications"),
      verificationDuration: histogram("verificationDuration"),
      limiterDecisions: counter("limiterDecisions"),
      cacheLookups: counter("cacheLookups"),
      heartbeatDuration: histogram("heartbeatDuration"),
      usageFlushDuration: histogram("usageFlushDuration"),
      webhookDeliveries: counter("webhookDeliveries"),
    };
  }

  private attributeNames(name: InstrumentName): readonly string[] {
    const spec: InstrumentSpec = INSTRUMENTS[name];
    return spec.perOrg === true ? [...spec.attributes, ...this.perOrg] : spec.attributes;
  }
}

function observeIn(sink: MetricSink, spec: InstrumentSpec, read: () => number | null): void {
  sink.observe(spec, () => read() ?? Number.NaN);
}

const NOOP_COUNTER: CounterLike = { add() {} };
const NOOP_HISTOGRAM: HistogramLike = { record() {} };
const NOOP_INSTRUMENTS: Instruments = {
  verifications: NOOP_COUNTER,
  verificationDuration: NOOP_HISTOGRAM,
  limiterDecisions: NOOP_COUNTER,
  cacheLookups: NOOP_COUNTER,
  heartbeatDuration: NOOP_HISTOGRAM,
  usageFlushDuration: NOOP_HISTOGRAM,
  webhookDeliveries: NOOP_COUNTER,
};

function fanOut(targets: CounterLike[]): CounterLike {
  if (targets.length === 1) return targets[0] as CounterLike;
  return {
    add(value, attributes) {
      for (const target of targets) target.add(value, attributes);
    },
  };
}

function fanOutHistogram(targets: HistogramLike[]): HistogramLike {
  if (targets.length === 1) return targets[0] as HistogramLike;
  return {
    record(value, attributes) {
      for (const target of targets) target.record(value, attributes);
    },
  };
}

/** The instruments on an OpenTelemetry meter. */
function otelSink(meter: Meter): MetricSink {
  const options = (spec: InstrumentSpec) => ({
    unit: spec.unit,
    description: spec.description,
    ...(spec.buckets === undefined ? {} : { advice: { explicitBucketBoundaries: [...spec.buckets] } }),
  });
  return {
    counter: (spec) => meter.createCounter(spec.name, options(spec)),
    histogram: (spec) => meter.createHistogram(spec.name, options(spec)),
    observe: (spec, read) => {
      const instrument =
        spec.kind === "observable-counter"
          ? meter.createObservableCounter(spec.name, options(spec))
          : meter.createObservableGauge(spec.name, options(spec));
      instrument.addCallback((result) => {
        const value = read();
        if (!Number.isNaN(value)) result.observe(value);
      });
    },
  };
}

export type { MeterProvider, TracerProvider };
