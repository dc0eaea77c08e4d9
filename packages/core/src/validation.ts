/** Input schemas for the management API. Failures become `invalid_request` naming the field. */
import { z } from "zod";
import { FluxError } from "./errors.js";

const WINDOW_SHORTHAND = { "1s": 1, "1m": 60, "1h": 3600, "1d": 86400 } as const;

/** Ids: 1 to 128 letters, digits, `_ . : -`. The schema and the plain test share one pattern. */
const ID_CHARS = "A-Za-z0-9_.:-";
export const identifier = z
  .string()
  .min(1)
  .max(128)
  .regex(new RegExp(`^[${ID_CHARS}]+$`), "letters, digits, _ . : -");
export const displayName = z.string().trim().min(1).max(200);

/** The `identifier` rule as a plain test, for ids looked up on every call. */
export const ID_PATTERN = new RegExp(`^[${ID_CHARS}]{1,128}$`);

/**
 * Ids are identifiers and never hold anything else: other input (NUL, which PostgreSQL refuses in
 * text, or 10 KB of noise) is an unknown id, answered `not_found` without a query.
 */
export function idOrNotFound(id: unknown, detail: string): string {
  const value = String(id);
  if (!ID_PATTERN.test(value)) throw new FluxError("not_found", { detail });
  return value;
}

export const rateLimitWindowSchema = z
  .object({
    name: z
      .string()
      .min(1)
      .max(64)
      .regex(/^[A-Za-z0-9_-]+$/, "letters, digits, _ -"),
    limit: z.number().int().positive().max(1_000_000_000),
    window: z.union([
      z
        .number()
        .int()
        .positive()
        .max(31 * 86400),
      z.enum(["1s", "1m", "1h", "1d"]),
    ]),
    per: z.enum(["key", "org"]).optional(),
    algorithm: z.enum(["fixed", "sliding", "gcra"]).optional(),
    burst: z.number().int().positive().max(1_000_000_000).optional(),
  })
  .strict()
  .refine((window) => window.burst === undefined || window.algorithm === "gcra", {
    message: "burst applies to algorithm 'gcra' only",
    path: ["burst"],
  });

export const rateLimitsSchema = z
  .array(rateLimitWindowSchema)
  .max(10)
  .refine((windows) => new Set(windows.map((w) => w.name)).size === windows.length, {
    message: "window names must be unique",
  });

export const quotaSchema = z
  .object({
    limit: z.number().int().positive().max(Number.MAX_SAFE_INTEGER),
    period: z.enum(["day", "month", "total"]),
  })
  .strict();

export const metadataSchema = z
  .record(z.string(), z.unknown())
  .refine((value) => JSON.stringify(value).length <= 8192, { message: "at most 8 KiB as JSON" });

/** Seconds of a window given as a number or shorthand. */
export function windowSeconds(window: number | keyof typeof WINDOW_SHORTHAND): number {
  return typeof window === "number" ? window : WINDOW_SHORTHAND[window];
}

export function parseInput<T>(schema: z.ZodType<T>, input: unknown, what: string): T {
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const path = issue && issue.path.length > 0 ? `${what}.${issue.path.join(".")}` : what;
  throw new FluxError("invalid_request", {
    detail: `${path}: ${issue?.message ?? "invalid"}.`,
    extensions: { field: path },
  });
}
