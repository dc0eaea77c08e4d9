export type { WebhookRunReport } from "./dispatcher.js";
export {
  type EventData,
  LIFECYCLE_EVENT_TYPES,
  type LifecycleEvent,
  type LifecycleEventType,
  type LifecycleHandler,
} from "./event-types.js";
export type { EventInput } from "./events.js";
export {
  SIGNATURE_HEADER,
  signWebhookPayload,
  type VerifyWebhookOptions,
  verifyWebhookSignature,
} from "./signature.js";
export type { WebhookEndpointOptions, WebhookOptions } from "./webhook-options.js";
export type {
  AddWebhookInput,
  RecordedEvent,
  RecordedEventQuery,
  WebhookDeliveryInfo,
  WebhookDeliveryQuery,
  WebhookDeliveryStatus,
  WebhookEndpointInfo,
  Webhooks,
} from "./webhooks.js";
