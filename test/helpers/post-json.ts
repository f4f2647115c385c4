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
