/**
 * A Web request's body, read with a hard byte limit: a declared `Content-Length` past the limit is
 * refused unread, and a stream (chunked, or lying about its length) is read chunk by chunk and
 * cancelled at the first byte past it, so nothing past `max` is ever buffered. `null` past it.
 */
export async function readBodyLimited(request: Request, max: number): Promise<Buffer | null> {
  const declared = Number(request.headers.get("content-length") ?? Number.NaN);
  if (declared > max) {
    await request.body?.cancel().catch(() => {});
    return null;
  }
  if (request.body === null) return Buffer.alloc(0);
  const reader = request.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > max) {
      await reader.cancel().catch(() => {});
      return null;
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks, size);
}
