import http from 'node:http';

/**
 * Asks an edge whether it answers: GET /health for a Portal edge, HEAD on the URL for a mirror.
 * Resolves false on any error or after `timeoutMs`; never rejects.
 */
export function probeEdge(url: string, kind: string, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const target = kind === 'portal' ? new URL('/health', url) : new URL(url);
    const req = http.request(
      target,
      { method: kind === 'portal' ? 'GET' : 'HEAD', timeout: timeoutMs, agent: false },
      (res) => {
        res.resume();
        resolve((res.statusCode ?? 500) < 500);
      },
    );
    req.on('timeout', () => {
      req.destroy();
      resolve(false);
    });
    req.on('error', () => resolve(false));
    req.end();
  });
}
