/** Inputs of `flux.usage.query()` and `flux.usage.top()`; failures become `invalid_request`. */
import { z } from "zod";
import { parseInput } from "../validation.js";
import { USAGE_OUTCOMES, type UsageOutcome } from "./usage-outcomes.js";
import type { Granularity, GroupDimension } from "./usage-store.js";

export interface UsageQuery {
  orgId?: string;
  keyId?: string;
  /** Route template, as recorded. */
  endpoint?: string;
  method?: string;
  /**
   * Only calls with this outcome, e.g. `'allowed'` for the calls that were served (what usage
   * counted before refusals were recorded). @default every outcome
   */
  outcome?: UsageOutcome;
  /** Inclusive; aligned down to the granularity. */
  from: Date;
  /** Exclusive; aligned up to the granularity. */
  to: Date;
  granularity: Granularity;
  /**
   * One series per distinct combination of these (`'outcome'`: one per outcome, with
   * `group.outcome`); none: a single series counting every identified call.
   */
  groupBy?: GroupDimension[];
}

export interface UsageTopQuery {
  orgId: string;
  by: "key" | "endpoint";
  from: Date;
  to: Date;
  /** @default 10 (at most 1000) */
  limit?: number;
}

const id = z.string().min(1).max(128);
const date = z.date().refine((value) => !Number.isNaN(value.getTime()), { message: "invalid date" });
const range = <T extends { from: Date; to: Date }>(value: T) => value.from.getTime() < value.to.getTime();
const rangeIssue = { message: "from must be before to", path: ["to"] };

const usageQuerySchema = z
  .object({
    orgId: id.optional(),
    keyId: id.optional(),
    endpoint: z.string().min(1).max(256).optional(),
    method: z
      .string()
      .min(1)
      .max(16)
      .transform((value) => value.toUpperCase())
      .optional(),
    outcome: z.enum(USAGE_OUTCOMES).optional(),
    from: date,
    to: date,
    granularity: z.enum(["minute", "hour", "day"]),
    groupBy: z
      .array(z.enum(["key", "endpoint", "status", "outcome"]))
      .max(4)
      .optional(),
  })
  .strict()
  .refine(range, rangeIssue);

const topQuerySchema = z
  .object({
    orgId: id,
    by: z.enum(["key", "endpoint"]),
    from: date,
    to: date,
    limit: z.number().int().min(1).max(1000).optional(),
  })
  .strict()
  .refine(range, rangeIssue);

export function parseUsageQuery(input: unknown): UsageQuery {
  return parseInput(usageQuerySchema, input, "query") as UsageQuery;
}

export function parseTopQuery(input: unknown): UsageTopQuery {
  return parseInput(topQuerySchema, input, "query") as UsageTopQuery;
}
