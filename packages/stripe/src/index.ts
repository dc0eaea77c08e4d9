/**
 * Stripe for Flux Keys.
 *
 *   app.post("/stripe/webhooks", fluxWebHandler(createStripeWebhookHandler(flux, { stripe, webhookSecret, plans })));
 *   const meters = createStripeMeterSync(flux, { stripe, meters: [{ eventName: "api_calls" }] });
 *   meters.start();
 */

export { createStripeMeterSync, type MeterSyncReport, type StripeMeterSync } from "./meter-sync.js";
export type {
  MeterDefinition,
  PastDuePolicy,
  StripeMeterSyncOptions,
  StripeWebhookOptions,
} from "./options.js";
export { findUnmappedPrices, PLAN_METADATA_KEY, type UnmappedPrice } from "./price-plans.js";
export { createStripeWebhookHandler, STRIPE_PROVIDER, type StripeWebhookHandler } from "./webhook-handler.js";
