import { type PortalRole, servePortal } from "@flux-keys/core";
import { type Command, Option } from "commander";
import { RefusedError, UsageError } from "../cli-errors.js";
import { action, examples } from "../command.js";
import type { CliIo } from "../io.js";
import { when } from "../output.js";
import { durationMs, port } from "../parse.js";
import type { Session } from "../session.js";

const ROLES: PortalRole[] = ["viewer", "member", "admin"];
const DEFAULT_PORT = 4400;
const DEFAULT_BASE_PATH = "/portal";

interface LinkFlags {
  org: string;
  user: string;
  role: PortalRole;
  returnUrl?: string;
  ttl?: number;
  baseUrl?: string;
}

interface ServeFlags {
  port: number;
  host: string;
  basePath: string;
  baseUrl?: string;
  org?: string;
  user?: string;
  role?: PortalRole;
}

async function createLink(
  session: Session,
  input: {
    orgId: string;
    userId: string;
    role: PortalRole;
    returnUrl?: string;
    ttl?: number;
    baseUrl: string;
  },
) {
  const flux = await session.flux();
  return flux.portal.createSession({
    orgId: input.orgId,
    userId: input.userId,
    role: input.role,
    baseUrl: input.baseUrl,
    ...(input.returnUrl !== undefined ? { returnUrl: input.returnUrl } : {}),
    ...(input.ttl !== undefined ? { ttl: input.ttl } : {}),
  });
}

/**
 * Resolves on the first SIGINT or SIGTERM. The listeners stay until `dispose()`, so a second
 * signal during the shutdown (the terminal and bin/flux.mjs may both deliver one) is absorbed.
 */
function signals(): { received: Promise<NodeJS.Signals>; dispose(): void } {
  let stop: (signal: NodeJS.Signals) => void = () => {};
  const received = new Promise<NodeJS.Signals>((resolve) => {
    stop = resolve;
  });
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
  return {
    received,
    dispose: () => {
      process.off("SIGINT", stop);
      process.off("SIGTERM", stop);
    },
  };
}

/** servePortal, with the usual ways a listen fails reported as one clear refusal. */
async function listen(handler: Parameters<typeof servePortal>[0], flags: ServeFlags) {
  try {
    return await servePortal(handler, { port: flags.port, host: flags.host });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "EADDRINUSE") throw new RefusedError(`${flags.host}:${flags.port} is already in use.`);
    if (code === "EACCES") throw new RefusedError(`Not allowed to listen on ${flags.host}:${flags.port}.`);
    if (code === "EADDRNOTAVAIL" || code === "ENOTFOUND")
      throw new UsageError(`Cannot bind to ${flags.host}.`);
    throw error;
  }
}

export function registerPortal(program: Command, io: CliIo): void {
  const portal = program.command("portal").description("The customers' self-service key portal.");

  portal
    .command("link")
    .description("Create a single-use sign-in link to the portal for one customer user and print it.")
    .requiredOption("--org <orgId>", "the customer's org")
    .requiredOption("--user <userId>", "the user's id in your app (shown in the audit log)")
    .addOption(
      new Option("--role <role>", "viewer reads; member also manages own keys; admin manages all")
        .choices(ROLES)
        .makeOptionMandatory(),
    )
    .option("--return-url <url>", "where 'Back to app' and sign-out lead")
    .option("--ttl <duration>", "how long the link can be opened (default 5m, at most 15m)", durationMs)
    .option(
      "--base-url <url>",
      `public URL of the portal (default: $FLUX_PORTAL_URL, else http://127.0.0.1:${DEFAULT_PORT}${DEFAULT_BASE_PATH}, where \`flux portal serve\` listens)`,
    )
    .addHelpText(
      "after",
      examples(
        "flux portal link --org acme --user alice@acme.test --role admin --base-url https://app.example.com/portal",
        'open "$(flux portal link --org acme --user u_42 --role member --quiet)"',
      ),
    )
    .action(
      action<LinkFlags>(io, async (session, flags) => {
        const baseUrl =
          flags.baseUrl ?? io.env.FLUX_PORTAL_URL ?? `http://127.0.0.1:${DEFAULT_PORT}${DEFAULT_BASE_PATH}`;
        const link = await createLink(session, {
          orgId: flags.org,
          userId: flags.user,
          role: flags.role,
          baseUrl,
          ...(flags.returnUrl !== undefined ? { returnUrl: flags.returnUrl } : {}),
          ...(flags.ttl !== undefined ? { ttl: flags.ttl } : {}),
        });
        if (session.json) return session.printJson(link);
        session.out(link.url);
        session.note(`Single use; open it before ${when(link.expiresAt)}.`);
      }),
    );

  portal
    .command("serve")
    .description("Run the portal on its own (node:http), until SIGINT or SIGTERM.")
    .option("--port <port>", "port to listen on (0 picks a free one)", port, DEFAULT_PORT)
    .option(
      "--host <host>",
      "address to bind (put a TLS proxy in front for anything but loopback)",
      "127.0.0.1",
    )
    .option("--base-path <path>", "path the portal is served under", DEFAULT_BASE_PATH)
    .option("--base-url <url>", "public URL of the portal when behind a proxy (makes links absolute)")
    .option("--org <orgId>", "with --user and --role: print a sign-in link once listening")
    .option("--user <userId>", "see --org")
    .addOption(new Option("--role <role>", "see --org").choices(ROLES))
    .addHelpText(
      "after",
      examples(
        'flux portal serve --database "$DATABASE_URL" --port 4400',
        "flux portal serve --pglite ./data --port 0 --org acme --user alice --role admin",
      ),
    )
    .action(
      action<ServeFlags>(io, async (session, flags) => {
        const wantsLink = [flags.org, flags.user, flags.role].filter((v) => v !== undefined).length;
        if (wantsLink !== 0 && wantsLink !== 3)
          throw new UsageError("Pass --org, --user and --role together (or none).");
        const flux = await session.flux();
        const basePath = flags.basePath.replace(/\/+$/, "");
        const handler = flux.portal.handler({
          basePath,
          ...(flags.baseUrl !== undefined ? { baseUrl: flags.baseUrl } : {}),
        });
        const stopping = signals();
        try {
          const server = await listen((request, context) => {
            const url = new URL(request.url);
            if (basePath !== "" && url.pathname === "/") {
              return Promise.resolve(Response.redirect(new URL(basePath, url), 302));
            }
            return handler(request, context);
          }, flags);
          try {
            const publicUrl = flags.baseUrl?.replace(/\/+$/, "") ?? `${server.url}${basePath}`;
            const link =
              wantsLink === 3
                ? await createLink(session, {
                    orgId: flags.org!,
                    userId: flags.user!,
                    role: flags.role!,
                    baseUrl: publicUrl,
                  })
                : null;
            if (session.json) session.printJson({ url: publicUrl, ...(link ? { link } : {}) });
            else {
              session.out(`Portal listening on ${publicUrl}`);
              if (link) session.out(`Sign-in link (single use, until ${when(link.expiresAt)}): ${link.url}`);
              session.note("Press Ctrl+C to stop.");
            }
            const signal = await stopping.received;
            session.note(`${signal}: stopping.`);
          } finally {
            await server.close();
          }
          await session.close();
        } finally {
          stopping.dispose();
        }
      }),
    );
}
