import { defaultHttpClient, type HttpClient } from '../transfer/index.js';

/**
 * Asks an edge whether it answers: GET /health for a Portal edge, HEAD on the URL for a mirror (redirects
 * followed), over the process's HTTP client (undici; its CA, proxy and headers). An answer below 500 counts.
 * Resolves false on any error or after `timeoutMs`; never rejects.
 */
export async function probeEdge(
  url: string,
  kind: string,
  timeoutMs = 1000,
  client: HttpClient = defaultHttpClient(),
): Promise<boolean> {
  const target = kind === 'portal' ? new URL('/health', url).href : url;
  try {
    const r = await client.send(target, {
      method: kind === 'portal' ? 'GET' : 'HEAD',
      signal: AbortSignal.timeout(timeoutMs),
    });
    await r.body.dump().catch(() => undefined);
    return r.statusCode < 500;
  } catch {
    return false;
  }
}
