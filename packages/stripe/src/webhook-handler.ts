/**
 * Stripe webhooks → the org's plan, live. A Web handler (`Request` in, `Response` out): mount it
 * with the adapters' Web-handler mounts (`fluxWebHandler`, `fluxWebRoute`, `toNodeListener`),
 * ahead of any JSON body parser, since the signature covers the raw body.
 *
 * Handled: `customer.subscription.created|updated|deleted|paused|resumed` (the subscription's
 * status and price set the plan), `customer.subscription.trial_will_end` (recorded),
 * `invoice.payment_failed` (a paying subscription becomes past due). Anything else is
 * acknowledged and ignored. Each event is applied once (by id) and in order (by `created`).
 */
import {
  type BillingEventInput,
  type Flux,
  FluxError,
  PROBLEM_CONTENT_TYPE,
  readBodyLimited,
} from "@flux-keys/core";
import type Stripe from "stripe";
import { resolveWebhookOptions, type StripeWebhookOptions } from "./options.js";
import { type PriceLike, PricePlans } from "./price-plans.js";

export const STRIPE_PROVIDER = "stripe";

export interface StripeWebhookHandler {
  (request: Request): Promise<Response>;
  /**
   * Moves orgs whose subscription has been past due longer than the grace period to the
   * past-due plan; returns how many moved. The handler runs it every `pastDue.checkInterval`
   * (Stripe sends no event when a grace period of ours ends); call it yourself to run it now.
   */
  enforcePastDue(): Promise<number>;
  /** Stops the automatic past-due check. */
  close(): void;
}

/** Same-second events of one subscription: `deleted` after `updated` after `created`. */
const TIE_BREAK_MS: Record<string, number> = {
  "customer.subscription.created": 0,
  "customer.subscription.deleted": 2,
};

interface SubscriptionLike {
  id: string;
  status: string;
  customer: string | { id: string };
  items?: { data?: Array<{ price?: PriceLike | null }> };
}

interface InvoiceLike {
  customer: string | { id: string } | null;
  subscription?: string | { id: string } | null;
  parent?: { subscription_details?: { subscription?: string | { id: string } | null } | null } | null;
}

const idOf = (value: string | { id: string } | null | undefined): string | null =>
  value == null ? null : typeof value === "string" ? value : value.id;

function problem(error: FluxError): Response {
  return new Response(JSON.stringify(error.toProblem()), {
    status: error.status,
    headers: { "Content-Type": PROBLEM_CONTENT_TYPE, "Cache-Control": "no-store" },
  });
}

async function readBody(request: Request, limit: number): Promise<string> {
  // Never buffered past the limit, whatever the request says of its length.
  const body = await readBodyLimited(request, limit);
  if (body === null) throw new FluxError("invalid_request", { detail: "The body is too large." });
  return body.toString("utf8");
}

export function createStripeWebhookHandler(flux: Flux, options: StripeWebhookOptions): StripeWebhookHandler {
  const config = resolveWebhookOptions(options);
  const prices = new PricePlans(config.stripe, config.plans);

  async function toInput(event: Stripe.Event): Promise<BillingEventInput | null> {
    const base = {
      provider: STRIPE_PROVIDER,
      eventId: event.id,
      eventType: event.type,
      occurredAt: new Date(event.created * 1000 + (TIE_BREAK_MS[event.type] ?? 1)),
      policy: config.policy,
    };
    switch (event.type) {
      case "customer.subscription.created":
      case "customer.subscription.updated":
      case "customer.subscription.deleted":
      case "customer.subscription.paused":
      case "customer.subscription.resumed": {
        const subscription = event.data.object as unknown as SubscriptionLike;
        const plansOfItems = await Promise.all(
          (subscription.items?.data ?? []).map((item) => (item.price ? prices.planOf(item.price) : null)),
        );
        const paidPlanId = plansOfItems.find((plan) => plan !== null) ?? null;
        const customerId = idOf(subscription.customer);
        if (customerId === null) return null;
        if (paidPlanId === null && (subscription.items?.data?.length ?? 0) > 0) {
          // A price we have no plan for: leave the org alone (`findUnmappedPrices` reports these).
          return { ...base, customerId, subscription: null, eventType: "unmapped_price" };
        }
        return {
          ...base,
          customerId,
          subscription: {
            kind: "state",
            id: subscription.id,
            // A deleted subscription's object may still say `active` in old API versions.
            status: event.type === "customer.subscription.deleted" ? "canceled" : subscription.status,
            paidPlanId,
          },
        };
      }
      case "customer.subscription.trial_will_end": {
        const subscription = event.data.object as unknown as SubscriptionLike;
        const customerId = idOf(subscription.customer);
        return customerId === null ? null : { ...base, customerId, subscription: null };
      }
      case "invoice.payment_failed": {
        const invoice = event.data.object as unknown as InvoiceLike;
        const customerId = idOf(invoice.customer);
        const subscriptionId =
          idOf(invoice.parent?.subscription_details?.subscription) ?? idOf(invoice.subscription);
        return customerId === null
          ? null
          : { ...base, customerId, subscription: { kind: "payment_failed", id: subscriptionId } };
      }
      default:
        return null;
    }
  }

  const handler = (async (request: Request): Promise<Response> => {
    try {
      if (request.method !== "POST") {
        throw new FluxError("invalid_request", { detail: "Stripe webhooks are POST requests." });
      }
      const signature = request.headers.get("stripe-signature");
      if (!signature)
        throw new FluxError("invalid_request", { detail: "The Stripe-Signature header is missing." });
      const body = await readBody(request, config.maxBodyBytes);
      let event: Stripe.Event;
      try {
        event = await config.stripe.webhooks.constructEventAsync(
          body,
          signature,
          config.webhookSecret,
          config.tolerance,
        );
      } catch {
        // The SDK's message is not echoed: nothing about the secret or the expected signature leaks.
        throw new FluxError("invalid_request", { detail: "The Stripe signature is not valid." });
      }
      const input = await toInput(event);
      if (input === null) return Response.json({ received: true, outcome: "ignored" });
      const result = await flux.billing.applyEvent(input);
      return Response.json({ received: true, outcome: result.outcome });
    } catch (error) {
      if (error instanceof FluxError) return problem(error);
      // A Stripe API failure (reading a product) or a bug: 500, and Stripe retries.
      return problem(
        new FluxError("store_unavailable", { detail: "The event could not be handled; retry." }),
      );
    }
  }) as StripeWebhookHandler;
  handler.enforcePastDue = () => flux.billing.enforcePastDue(STRIPE_PROVIDER, config.policy);
  let timer: NodeJS.Timeout | null = null;
  if (config.pastDueCheckMs !== null) {
    timer = setInterval(() => {
      // A failed round (database down) is retried at the next interval.
      handler.enforcePastDue().catch(() => {});
    }, config.pastDueCheckMs);
    timer.unref();
  }
  handler.close = () => {
    if (timer !== null) clearInterval(timer);
    timer = null;
  };
  return handler;
}
