/**
 * Prometheus for those who scrape: the `flux.*` instruments (instruments.ts) as `prom-client`
 * metrics named in Prometheus conventions (`flux_verifications_total`,
 * `flux_verification_duration_seconds`), in a registry of their own or the app's, and a Web
 * handler serving it that each adapter mounts at `/metrics`.
 */
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import { FluxConfigError } from "../errors.js";
import type { Flux } from "../flux.js";
import { seamsOf } from "../seams.js";
import { type InstrumentSpec, prometheusLabel, prometheusName } from "./instruments.js";
import type { CounterLike, HistogramLike, MetricSink } from "./telemetry.js";

export interface PrometheusOptions {
  /**
   * The registry to add the `flux_*` metrics to: the app's own (e.g. prom-client's default
   * `register`, to serve them with its other metrics), or a new one.
   * @default a new Registry
   */
  registry?: Registry;
}

export interface PrometheusHandler {
  (request: Request): Promise<Response>;
  /** The registry the handler serves. */
  readonly registry: Registry;
}

type Labels = Record<string, string>;

/** Per instance, the registries it already feeds (adding twice would register twice). */
const fed = new WeakMap<Flux, Set<Registry>>();
/** The registry each instance's mounts share when the app passes none. */
const ownRegistry = new WeakMap<Flux, Registry>();

/** Adds this instance's `flux_*` metrics to a registry (a new one by default) and returns it. */
export function createPrometheusRegistry(flux: Flux, options: PrometheusOptions = {}): Registry {
  for (const name of Object.keys(options)) {
    if (name !== "registry")
      throw new FluxConfigError("unknown_option", `Unknown Prometheus option '${name}'.`);
  }
  // Without a registry of its own, every mount on this instance shares one (fed once).
  let registry = options.registry ?? ownRegistry.get(flux);
  if (registry === undefined) {
    registry = new Registry();
    ownRegistry.set(flux, registry);
  }
  let registries = fed.get(flux);
  if (registries === undefined) {
    registries = new Set();
    fed.set(flux, registries);
  }
  if (!registries.has(registry)) {
    registries.add(registry);
    seamsOf(flux).metrics.addSink(prometheusSink(registry));
  }
  return registry;
}

/**
 * A Web handler (`Request` in, `Response` out) answering `GET` with the registry in Prometheus
 * text format. Mount it with the adapters' `fluxMetrics`.
 */
export function prometheusHandler(flux: Flux, options: PrometheusOptions = {}): PrometheusHandler {
  const registry = createPrometheusRegistry(flux, options);
  const handler = async (request: Request): Promise<Response> => {
    if (request.method !== "GET" && request.method !== "HEAD") {
      return new Response(null, { status: 405, headers: { allow: "GET, HEAD" } });
    }
    const body = await registry.metrics();
    return new Response(request.method === "HEAD" ? null : body, {
      status: 200,
      headers: { "content-type": registry.contentType, "cache-control": "no-store" },
    });
  };
  return Object.assign(handler, { registry });
}

function prometheusSink(registry: Registry): MetricSink {
  // The instruments are built again whenever a sink joins the instance: each metric is made once.
  const made = new Map<string, unknown>();
  const observed = new Set<string>();
  const once = <M>(name: string, make: (name: string) => M): M => {
    let metric = made.get(name) as M | undefined;
    if (metric === undefined) {
      metric = make(name);
      made.set(name, metric);
    }
    return metric;
  };
  return {
    counter(spec, attributes) {
      const labels = labelMapper(attributes);
      const metric = once(
        prometheusName(spec),
        (name) =>
          new Counter({
            name,
            help: spec.description,
            labelNames: attributes.map(prometheusLabel),
            registers: [registry],
          }),
      );
      return {
        add: (value, attrs) => metric.inc(labels(attrs), value),
      } satisfies CounterLike;
    },
    histogram(spec, attributes) {
      const labels = labelMapper(attributes);
      const metric = once(
        prometheusName(spec),
        (name) =>
          new Histogram({
            name,
            help: spec.description,
            labelNames: attributes.map(prometheusLabel),
            buckets: [...(spec.buckets ?? [])],
            registers: [registry],
          }),
      );
      return {
        record: (value, attrs) => metric.observe(labels(attrs), value),
      } satisfies HistogramLike;
    },
    observe(spec: InstrumentSpec, read) {
      const name = prometheusName(spec);
      if (observed.has(name)) return;
      observed.add(name);
      if (spec.kind === "observable-counter") {
        new Counter({
          name,
          help: spec.description,
          registers: [registry],
          collect() {
            const value = read();
            this.reset();
            if (!Number.isNaN(value) && value > 0) this.inc(value);
          },
        });
        return;
      }
      new Gauge({
        name,
        help: spec.description,
        registers: [registry],
        collect() {
          const value = read();
          if (Number.isNaN(value)) this.reset();
          else this.set(value);
        },
      });
    },
  };
}

/** Attributes -> labels, memoized per attributes object (most are shared, frozen ones). */
function labelMapper(attributes: readonly string[]): (attrs: object | undefined) => Labels {
  const names = attributes.map((attribute) => [attribute, prometheusLabel(attribute)] as const);
  const memo = new WeakMap<object, Labels>();
  return (attrs) => {
    if (attrs === undefined) return {};
    let labels = memo.get(attrs);
    if (labels === undefined) {
      labels = {};
      const source = attrs as Record<string, unknown>;
      for (const [attribute, label] of names) {
        const value = source[attribute];
        if (value !== undefined) labels[label] = String(value);
      }
      if (Object.isFrozen(attrs)) memo.set(attrs, labels);
    }
    return labels;
  };
}
