/**
 * The `logger` option takes a pino logger as is (no adapter, no cast): lines are written by pino
 * itself (so its child bindings and redaction apply), and each carries a stable `event` name.
 */
import { pino } from "pino";
import { describe, expect, it } from "vitest";
import { until } from "../../../test/support/until.js";
import { createFlux } from "../src/index.js";

function capture(): { lines: Array<Record<string, unknown>>; stream: { write(line: string): void } } {
  const lines: Array<Record<string, unknown>> = [];
  return { lines, stream: { write: (line) => lines.push(JSON.parse(line)) } };
}

describe("logging through pino", () => {
  it("writes Flux Keys' operational events through a pino child logger, each with its event name", async () => {
    const { lines, stream } = capture();
    const root = pino({ level: "debug", redact: ["secret"] }, stream);
    const flux = await createFlux({
      database: { pglite: true },
      redis: null,
      logger: root.child({ component: "flux-keys" }),
    });
    try {
      flux.on("key.created", () => {
        throw new Error("listener bug with a secret flux_live_xyz");
      });
      await flux.orgs.create({ id: "acme", name: "Acme" });
      const { secret } = await flux.keys.create().forOrg("acme").issue();
      await until(() => lines.some((line) => line.event === "flux.events.handler_error"));
      const line = lines.find((l) => l.event === "flux.events.handler_error") as Record<string, unknown>;
      expect(line).toMatchObject({
        level: 40,
        component: "flux-keys",
        type: "key.created",
        error: "Error",
        msg: "a lifecycle event listener failed",
      });
      for (const each of lines) {
        expect(each.event).toMatch(/^flux\.[a-z_]+\.[a-z_]+$/);
        expect(JSON.stringify(each)).not.toContain(secret);
        expect(JSON.stringify(each)).not.toContain("flux_live_xyz");
      }
    } finally {
      await flux.close();
    }
  });

  it("names the portal's events too (a resolveCustomer answer it cannot use)", async () => {
    const { lines, stream } = capture();
    const flux = await createFlux({ database: { pglite: true }, redis: null, logger: pino({}, stream) });
    try {
      const handler = flux.portal.handler({
        basePath: "/portal",
        resolveCustomer: () => ({ orgId: 42 }) as never,
      });
      await handler(new Request("http://127.0.0.1/portal/"));
      const line = lines.find(
        (l) => l.msg === "flux-keys portal: resolveCustomer returned an invalid customer",
      );
      expect(line?.event).toBe("flux.portal.invalid_customer");
    } finally {
      await flux.close();
    }
  });
});
