/**
 * A local stand-in for the parts of the Stripe API Flux Keys calls, for tests, examples and
 * benchmarks: point the official client at it (`fakeStripeClient(server)` sets host, port and
 * protocol). It records every request, deduplicates meter events by `identifier` and replays
 * responses by `Idempotency-Key` (as Stripe does), and can fail requests (500s) or hold their
 * responses (a sender that dies after Stripe counted the event but before it heard back).
 * Also builds signed webhook deliveries with the SDK's own test-header helper.
 */
import { once } from "node:events";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import Stripe from "stripe";

export interface RecordedRequest {
  method: string;
  path: string;
  idempotencyKey: string | null;
  body: Record<string, string>;
}

export interface FakeMeterEvent {
  eventName: string;
  identifier: string;
  timestamp: number;
  payload: Record<string, string>;
}

export interface FakeStripeServer {
  readonly port: number;
  readonly requests: RecordedRequest[];
  /** Meter events Stripe counted (one per identifier). */
  readonly meterEvents: FakeMeterEvent[];
  /** Products served by `GET /v1/products/:id`. */
  products: Map<string, { id: string; metadata: Record<string, string> }>;
  /** Prices served by `GET /v1/prices`. */
  prices: Array<Record<string, unknown>>;
  /** The next `count` requests answer `status` (500 by default) without doing anything. */
  failNext(count: number, status?: number): void;
  /** Fails each request with this probability (500), from now on; 0 turns it off. */
  failRandomly(probability: number): void;
  /** After `count` more meter events, count every further one but hold its response until `release()`. */
  holdAfter(count: number): void;
  /** Responses held now. */
  readonly heldCount: number;
  release(): void;
  /** Sum of the counted meter events' `value` for a meter (and customer). */
  total(eventName: string, customerId?: string): number;
  close(): Promise<void>;
}

function parseForm(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, value] of new URLSearchParams(text)) out[key] = value;
  return out;
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { "Content-Type": "application/json", "Request-Id": `req_${Date.now()}` });
  res.end(text);
}

export async function startFakeStripe(): Promise<FakeStripeServer> {
  const requests: RecordedRequest[] = [];
  const meterEvents: FakeMeterEvent[] = [];
  const identifiers = new Set<string>();
  const replies = new Map<string, { status: number; body: unknown }>();
  const held: Array<() => void> = [];
  let failures: { count: number; status: number } = { count: 0, status: 500 };
  let failProbability = 0;
  let holdAfter: number | null = null;

  const state = {
    products: new Map<string, { id: string; metadata: Record<string, string> }>(),
    prices: [] as Array<Record<string, unknown>>,
  };

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const url = new URL(req.url ?? "/", "http://localhost");
    const idempotencyKey = (req.headers["idempotency-key"] as string | undefined) ?? null;
    const body = parseForm(Buffer.concat(chunks).toString("utf8"));
    requests.push({ method: req.method ?? "GET", path: url.pathname, idempotencyKey, body });

    if (failures.count > 0) {
      failures.count--;
      return send(res, failures.status, { error: { type: "api_error", message: "Injected failure." } });
    }
    if (failProbability > 0 && Math.random() < failProbability) {
      return send(res, 500, { error: { type: "api_error", message: "Injected failure." } });
    }
    if (idempotencyKey !== null && replies.has(idempotencyKey)) {
      const reply = replies.get(idempotencyKey) as { status: number; body: unknown };
      res.setHeader("Idempotent-Replayed", "true");
      return send(res, reply.status, reply.body);
    }

    if (req.method === "POST" && url.pathname === "/v1/billing/meter_events") {
      const identifier = body.identifier ?? `gen_${requests.length}`;
      if (identifiers.has(identifier)) {
        return send(res, 400, {
          error: {
            type: "invalid_request_error",
            code: "duplicate_meter_event",
            message: `An event with identifier ${identifier} already exists.`,
          },
        });
      }
      identifiers.add(identifier);
      const payload: Record<string, string> = {};
      for (const [key, value] of Object.entries(body)) {
        const match = /^payload\[(.+)\]$/.exec(key);
        if (match?.[1]) payload[match[1]] = value;
      }
      const event = {
        eventName: body.event_name ?? "",
        identifier,
        timestamp: Number(body.timestamp ?? Math.floor(Date.now() / 1000)),
        payload,
      };
      meterEvents.push(event);
      const reply = {
        status: 200,
        body: {
          object: "billing.meter_event",
          created: Math.floor(Date.now() / 1000),
          event_name: event.eventName,
          identifier,
          livemode: false,
          payload,
          timestamp: event.timestamp,
        },
      };
      if (idempotencyKey !== null) replies.set(idempotencyKey, reply);
      if (holdAfter !== null) {
        if (holdAfter <= 0) {
          held.push(() => send(res, reply.status, reply.body));
          return;
        }
        holdAfter--;
      }
      return send(res, reply.status, reply.body);
    }
    const product = /^\/v1\/products\/([^/]+)$/.exec(url.pathname);
    if (req.method === "GET" && product?.[1]) {
      const found = state.products.get(product[1]);
      if (!found)
        return send(res, 404, { error: { type: "invalid_request_error", message: "No such product." } });
      return send(res, 200, { object: "product", active: true, ...found });
    }
    if (req.method === "GET" && url.pathname === "/v1/prices") {
      return send(res, 200, { object: "list", data: state.prices, has_more: false, url: "/v1/prices" });
    }
    send(res, 404, { error: { type: "invalid_request_error", message: "Unrecognized request URL." } });
  };

  const server: Server = createServer((req, res) => {
    handle(req, res).catch(() => send(res, 500, { error: { type: "api_error", message: "fake failed" } }));
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const port = (server.address() as AddressInfo).port;

  return {
    port,
    requests,
    meterEvents,
    get products() {
      return state.products;
    },
    set products(value) {
      state.products = value;
    },
    get prices() {
      return state.prices;
    },
    set prices(value) {
      state.prices = value;
    },
    failNext(count, status = 500) {
      failures = { count, status };
    },
    failRandomly(probability) {
      failProbability = probability;
    },
    get heldCount() {
      return held.length;
    },
    holdAfter(count) {
      holdAfter = count;
    },
    release() {
      holdAfter = null;
      for (const reply of held.splice(0)) reply();
    },
    total(eventName, customerId) {
      return meterEvents
        .filter((e) => e.eventName === eventName)
        .filter((e) => customerId === undefined || e.payload.stripe_customer_id === customerId)
        .reduce((sum, e) => sum + Number(e.payload.value ?? 0), 0);
    },
    async close() {
      for (const reply of held.splice(0)) reply();
      server.closeAllConnections();
      server.close();
      await once(server, "close").catch(() => {});
    },
  };
}

/** The official client, pointed at the fake server (no retries of its own). */
export function fakeStripeClient(server: Pick<FakeStripeServer, "port">): Stripe {
  return new Stripe("sk_test_fake", {
    host: "127.0.0.1",
    port: server.port,
    protocol: "http",
    maxNetworkRetries: 0,
    telemetry: false,
  });
}

export interface SubscriptionEventInput {
  /** Event id (`evt_…`). */
  id: string;
  type:
    | "customer.subscription.created"
    | "customer.subscription.updated"
    | "customer.subscription.deleted"
    | "customer.subscription.trial_will_end";
  /** Seconds since the epoch. */
  created: number;
  customer: string;
  subscription?: string;
  status: string;
  /** The price's lookup key. */
  lookupKey?: string | null;
  priceMetadata?: Record<string, string>;
  product?: string;
}

/** A Stripe event object carrying a subscription, as Stripe sends it. */
export function subscriptionEvent(input: SubscriptionEventInput): Record<string, unknown> {
  return {
    id: input.id,
    object: "event",
    api_version: "2025-01-01",
    created: input.created,
    livemode: false,
    pending_webhooks: 1,
    request: { id: null, idempotency_key: null },
    type: input.type,
    data: {
      object: {
        id: input.subscription ?? "sub_1",
        object: "subscription",
        customer: input.customer,
        status: input.status,
        items: {
          object: "list",
          data: [
            {
              id: "si_1",
              object: "subscription_item",
              price: {
                id: `price_${input.lookupKey ?? "x"}`,
                object: "price",
                lookup_key: input.lookupKey ?? null,
                metadata: input.priceMetadata ?? {},
                product: input.product ?? "prod_1",
              },
            },
          ],
        },
      },
    },
  };
}

/** An `invoice.payment_failed` event for a customer's subscription. */
export function paymentFailedEvent(input: {
  id: string;
  created: number;
  customer: string;
  subscription?: string;
}): Record<string, unknown> {
  return {
    id: input.id,
    object: "event",
    created: input.created,
    livemode: false,
    type: "invoice.payment_failed",
    data: {
      object: {
        id: "in_1",
        object: "invoice",
        customer: input.customer,
        parent: { subscription_details: { subscription: input.subscription ?? "sub_1" } },
      },
    },
  };
}

/**
 * The body and `Stripe-Signature` header of a delivery, signed with the SDK's test helper. The
 * body is pretty-printed, as Stripe sends it: a handler that re-encodes a parsed body fails.
 */
export function signEvent(
  stripe: Stripe,
  secret: string,
  event: Record<string, unknown>,
  timestamp = Math.floor(Date.now() / 1000),
): { body: string; signature: string } {
  const body = JSON.stringify(event, null, 2);
  return { body, signature: stripe.webhooks.generateTestHeaderString({ payload: body, secret, timestamp }) };
}
