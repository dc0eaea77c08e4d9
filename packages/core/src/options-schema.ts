/**
 * What every options schema of Flux Keys shares: turning zod's issues into a FluxConfigError with
 * the option's path (`unknown_option` for a name Flux Keys does not know, at any depth;
 * `invalid_option` otherwise), and the field types used in more than one section. A field's error
 * is a phrase (`'must be a positive integer.'`); the path is put in front of it here, so no option
 * name is written twice.
 */
import { z } from "zod";
import { type Duration, durationMs, isDuration } from "./duration.js";
import { FluxConfigError } from "./errors.js";

/** Options that moved: naming them is an invalid option that says where they went. */
const MOVED: Readonly<Record<string, string>> = {
  "limits.trustProxy":
    "limits.trustProxy is gone: set trustProxy once, at the top level: createFlux({ trustProxy }).",
};

/** Parses `input` with `schema`; throws the FluxConfigError of its first problem (unknown names first). */
export function parseOptions<S extends z.ZodType>(
  schema: S,
  input: unknown,
  where: readonly PropertyKey[] = [],
  subject = "createFlux()",
): z.output<S> {
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  throw toConfigError(result.error.issues, where, subject);
}

/** `subject` names what the options are for, in the unknown-option message. */
export function toConfigError(
  issues: readonly z.core.$ZodIssue[],
  where: readonly PropertyKey[] = [],
  subject = "createFlux()",
): FluxConfigError {
  const unknown = issues.find((issue) => issue.code === "unrecognized_keys");
  if (unknown !== undefined) {
    const path = pathText([...where, ...unknown.path, unknown.keys[0] ?? ""]);
    const moved = MOVED[path];
    if (moved !== undefined) return new FluxConfigError("invalid_option", moved);
    return new FluxConfigError("unknown_option", `Unknown option '${path}' for ${subject}.`);
  }
  const issue = issues[0];
  const path = pathText([...where, ...(issue?.path ?? [])]);
  return new FluxConfigError("invalid_option", `${path} ${issue?.message ?? "is invalid."}`.trim());
}

/** `['redis', 'cluster', 0, 'port']` -> `redis.cluster[0].port`. */
function pathText(path: readonly PropertyKey[]): string {
  let out = "";
  for (const part of path) {
    if (typeof part === "number") out += `[${part}]`;
    else out += out === "" ? String(part) : `.${String(part)}`;
  }
  return out;
}

/** A strict object: an unknown name inside it is refused, and a value that is no object too. */
export function section<const Shape extends z.core.$ZodLooseShape>(
  shape: Shape,
  error = "must be an object.",
) {
  return z.strictObject(shape, { error });
}

/** A whole number from `min` to `max`. */
export function integer(error: string, min = 1, max = Number.MAX_SAFE_INTEGER) {
  return z.int({ error }).min(min, { error }).max(max, { error });
}

/**
 * A Duration (see duration.ts) given as written, resolved to milliseconds; `min` (ms) with the
 * phrase that says it.
 */
export function duration(example: string, min?: { ms: number; error: string }) {
  const ms = z
    .custom<Duration>(isDuration, { error: `must be a duration such as '${example}'.` })
    .transform((value) => durationMs(value) as number);
  return min === undefined ? ms : ms.refine((value) => value >= min.ms, { error: min.error });
}

/** A value checked by a predicate and kept as is (a client, a function, a provider). */
export function instance<T>(check: (value: unknown) => boolean, error: string) {
  return z.custom<T>(check, { error });
}

/**
 * One of several object forms, chosen by which of their names the value carries (`{ url }`,
 * `{ client }`, …), then parsed strictly as that form, so a name of another form beside it is
 * reported as not understood rather than as a failed union.
 */
export function forms<const F extends Record<string, z.ZodType>>(
  choices: F,
  fallback: keyof F & string,
  error: string,
): z.ZodType<z.output<F[keyof F]>, z.input<F[keyof F]>> {
  const names = Object.keys(choices);
  return z.unknown().transform((value, ctx) => {
    if (typeof value !== "object" || value === null || Array.isArray(value)) {
      ctx.issues.push({ code: "custom", message: error, input: value });
      return z.NEVER;
    }
    const form = names.find((name) => name in value) ?? fallback;
    const result = (choices[form] as z.ZodType).safeParse(value);
    if (result.success) return result.data;
    for (const issue of result.error.issues) ctx.issues.push({ ...issue, input: value } as never);
    return z.NEVER;
  }) as never;
}

/** `false`, or a value of `schema` (its own problems reported at their own paths). */
export function falseOr<S extends z.ZodType>(schema: S) {
  return choose((value) => value === false, z.literal(false), schema);
}

/** `whenTrue` for the values `pick` accepts, else `otherwise`: a union whose branches report their own problems. */
export function choose<A extends z.ZodType, B extends z.ZodType>(
  pick: (value: unknown) => boolean,
  whenTrue: A,
  otherwise: B,
): z.ZodType<z.output<A> | z.output<B>, z.input<A> | z.input<B>> {
  return z.unknown().transform((value, ctx) => {
    const result = (pick(value) ? whenTrue : otherwise).safeParse(value);
    if (result.success) return result.data;
    for (const issue of result.error.issues) ctx.issues.push({ ...issue, input: value } as never);
    return z.NEVER;
  }) as never;
}
