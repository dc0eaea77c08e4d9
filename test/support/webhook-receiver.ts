/** A real HTTP receiver on 127.0.0.1 for webhook tests (loopback only). */
import { createServer, type IncomingHttpHeaders } from "node:http";
import type { AddressInfo } from "node:net";

export interface Receipt {
  headers: IncomingHttpHeaders;
  body: string;
  json: { id: string; type: string; createdAt: string; data: Record<string, unknown> };
}

export interface Receiver {
  url: string;
  receipts: Receipt[];
  /** Status to answer the n-th request (0-based) with; `null` never answers. */
  respond: (n: number, receipt: Receipt) => number | null;
  close(): Promise<void>;
}

export async function startReceiver(respond: Receiver["respond"] = () => 200): Promise<Receiver> {
  const receipts: Receipt[] = [];
  const receiver: Receiver = {
    url: "",
    receipts,
    respond,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      const body = Buffer.concat(chunks).toString("utf8");
      const receipt: Receipt = { headers: req.headers, body, json: JSON.parse(body) };
      const n = receipts.length;
      receipts.push(receipt);
      const status = receiver.respond(n, receipt);
      if (status === null) return; // hang: the sender's timeout ends it
      res.writeHead(status, { "Content-Type": "text/plain" }).end("ok");
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  receiver.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks`;
  return receiver;
}

export { until } from "./until.js";
