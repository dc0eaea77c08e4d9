/**
 * A TLS-terminating reverse proxy in front of an app, as a deployment has one: HTTPS outside
 * (a self-signed certificate made by the `openssl` CLI for this run), plain HTTP to the app, the
 * upstream's own Host (as nginx's `proxy_pass` sends by default) and the client's scheme, host and
 * address in `X-Forwarded-*` or in `Forwarded` (RFC 7239).
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { request as httpRequest, type IncomingHttpHeaders } from "node:http";
import { createServer, type Server } from "node:https";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface TlsProxy {
  /** `https://127.0.0.1:<port>` */
  url: string;
  /** The certificate (PEM), for clients that verify it. */
  cert: string;
  server: Server;
  close(): Promise<void>;
}

/** A self-signed certificate for 127.0.0.1 and localhost. */
export function selfSignedCertificate(): { key: string; cert: string } {
  const dir = mkdtempSync(join(tmpdir(), "flux-tls-"));
  try {
    execFileSync(
      "openssl",
      [
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        join(dir, "key.pem"),
        "-out",
        join(dir, "cert.pem"),
        "-days",
        "1",
        "-subj",
        "/CN=localhost",
        "-addext",
        "subjectAltName=IP:127.0.0.1,DNS:localhost",
      ],
      { stdio: "pipe" },
    );
    return {
      key: readFileSync(join(dir, "key.pem"), "utf8"),
      cert: readFileSync(join(dir, "cert.pem"), "utf8"),
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function startTlsProxy(
  upstreamUrl: string,
  options: { style?: "x-forwarded" | "forwarded" } = {},
): Promise<TlsProxy> {
  const upstream = new URL(upstreamUrl);
  const { key, cert } = selfSignedCertificate();
  const server = createServer({ key, cert }, (req, res) => {
    const headers: IncomingHttpHeaders = { ...req.headers, host: upstream.host };
    const client = req.socket.remoteAddress ?? "";
    const host = req.headers.host ?? "";
    if (options.style === "forwarded") {
      headers.forwarded = `for="${client.includes(":") ? `[${client}]` : client}";proto=https;host="${host}"`;
    } else {
      headers["x-forwarded-for"] = client;
      headers["x-forwarded-proto"] = "https";
      headers["x-forwarded-host"] = host;
    }
    const forward = httpRequest(
      { host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    forward.on("error", () => {
      if (!res.headersSent) res.writeHead(502);
      res.end();
    });
    req.pipe(forward);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
  const { port } = server.address() as AddressInfo;
  return {
    url: `https://127.0.0.1:${port}`,
    cert,
    server,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
