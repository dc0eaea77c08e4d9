/**
 * Which Flux plan a Stripe price means, declared once: the price's `lookup_key` in the `plans`
 * map, else `flux_plan` in the price's metadata, else `flux_plan` in its product's metadata.
 */
import type Stripe from "stripe";

/** Metadata key naming the Flux plan, on a Stripe price or product. */
export const PLAN_METADATA_KEY = "flux_plan";

export interface PriceLike {
  id: string;
  lookup_key?: string | null;
  metadata?: Record<string, string> | null;
  product?: string | { id: string; metadata?: Record<string, string> | null; deleted?: boolean } | null;
}

export class PricePlans {
  private readonly products = new Map<string, string | null>();

  constructor(
    private readonly stripe: Stripe,
    private readonly plans: Readonly<Record<string, string>>,
  ) {}

  /** The plan of a price, or null when none is declared. May read the product from Stripe. */
  async planOf(price: PriceLike): Promise<string | null> {
    const declared = this.declared(price);
    if (declared !== undefined) return declared;
    const product = price.product;
    if (typeof product !== "string") return null;
    if (!this.products.has(product)) {
      const fetched = await this.stripe.products.retrieve(product);
      this.products.set(product, fetched.metadata?.[PLAN_METADATA_KEY] ?? null);
    }
    return this.products.get(product) ?? null;
  }

  /** Without I/O: the plan, null when the price says there is none, undefined when unknown. */
  private declared(price: PriceLike): string | null | undefined {
    if (price.lookup_key && Object.hasOwn(this.plans, price.lookup_key)) {
      return this.plans[price.lookup_key] ?? null;
    }
    const own = price.metadata?.[PLAN_METADATA_KEY];
    if (own) return own;
    const product = price.product;
    if (product && typeof product === "object") return product.metadata?.[PLAN_METADATA_KEY] ?? null;
    return undefined;
  }
}

export interface UnmappedPrice {
  id: string;
  lookupKey: string | null;
  productId: string | null;
}

/**
 * The active recurring prices that map to no Flux plan (a sync to run after editing the catalogue
 * or the `plans` map): a subscription to one of these leaves the org's plan unchanged.
 */
export async function findUnmappedPrices(options: {
  stripe: Stripe;
  plans: Readonly<Record<string, string>>;
}): Promise<UnmappedPrice[]> {
  const resolver = new PricePlans(options.stripe, options.plans);
  const unmapped: UnmappedPrice[] = [];
  for await (const price of options.stripe.prices.list({ active: true, type: "recurring", limit: 100 })) {
    if ((await resolver.planOf(price as PriceLike)) !== null) continue;
    const product = price.product;
    unmapped.push({
      id: price.id,
      lookupKey: price.lookup_key ?? null,
      productId: typeof product === "string" ? product : (product?.id ?? null),
    });
  }
  return unmapped;
}
