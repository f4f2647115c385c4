/**
 * POSTs `body` (JSON, or nothing) to `url` with fetch and returns the status and the parsed JSON answer
 * (`{}` for an empty one): the actor API calls of the tests that drive a real `portal serve`.
 */
export async function postJson(
  url: string,
  body?: unknown,
): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, json: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
}

/**
 * Polls `get` every 100 ms until `ok` holds for its value, and returns that value; throws naming `what` and the last
 * value after `ms` (default 60 s).
 */
export async function until<T>(
  what: string,
  get: () => Promise<T>,
  ok: (v: T) => boolean,
  ms = 60_000,
): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await get();
    if (ok(v)) return v;
    if (Date.now() > deadline) throw new Error(`${what}: still ${JSON.stringify(v)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
