import { spawn } from 'node:child_process';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { freePort } from '../../common/net.js';
import { createDaprActorClient } from '../../runtime/index.js';
import { AWKWARD_IDS } from '../runtime/fixtures.js';

const MAIN = path.resolve('dist/cli/main.js');

/** Starts `portal serve --runtime embedded` with the test actors; resolves once it printed its ready line. */
async function serveEmbedded(args: string[] = []) {
  const port = await freePort();
  const child = spawn(
    process.execPath,
    [MAIN, 'serve', '--runtime', 'embedded', '--app-port', String(port), '--json', ...args],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, PORTAL_LOG_LEVEL: 'warn', PORTAL_TEST_ACTORS: '1', NATS_URL: '' },
    },
  );
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const exited = new Promise<{ code: number | null; at: number }>((resolve) =>
    child.on('exit', (code) => resolve({ code, at: Date.now() })),
  );
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`serve not ready: ${stderr}`)), 60_000);
    createInterface({ input: child.stdout }).on('line', (l) => {
      if (l.includes('"type":"ready"')) {
        clearTimeout(t);
        resolve();
      }
    });
  });
  return { port, child, exited };
}

// one rule for actor ids on every host, the embedded host's HTTP API included.
test('portal serve --runtime embedded: the Dapr actor client reaches every id as its own actor', async () => {
  const { port, child, exited } = await serveEmbedded();
  const client = createDaprActorClient({ port });
  try {
    for (const id of AWKWARD_IDS) {
      expect(await client.invoke('ProbeActor', id, 'whoAmI')).toBe(id);
      await client.invoke('ProbeActor', id, 'put', { key: 'mine', value: id });
    }
    for (const id of AWKWARD_IDS) expect(await client.invoke('ProbeActor', id, 'read', 'mine')).toBe(id);
    // an id that is not in the wire form (`a|b` percent-encoded) is refused, not taken as another actor
    const raw = await fetch(`http://127.0.0.1:${port}/v1.0/actors/ProbeActor/a%7Cb/method/noop`, {
      method: 'POST',
    });
    expect(raw.status).toBe(400);
    expect(await raw.text()).toContain('PORTAL_INVALID_ARGUMENT');
  } finally {
    client.close();
    child.kill('SIGTERM');
    await exited;
  }
}, 90_000);

// An id percent-encoded instead of put in its wire form (`a%2Fb` for `a/b`) is refused as daprd refuses it (it
// decodes `%2F` into a separator before routing): the answer says in the user's terms what is wrong and what to send.
test('portal serve --runtime embedded: an actor id percent-encoded instead of wire-encoded is refused saying what to send', async () => {
  const { port, child, exited } = await serveEmbedded();
  const post = async (
    id: string,
  ): Promise<{ status: number; body: { error: { code: string; message: string } } }> => {
    const r = await fetch(`http://127.0.0.1:${port}/v1.0/actors/ProbeActor/${id}/method/whoAmI`, {
      method: 'POST',
    });
    return { status: r.status, body: (await r.json()) as { error: { code: string; message: string } } };
  };
  try {
    const slash = await post('a%2Fb');
    expect(slash.status).toBe(400);
    expect(slash.body.error.code).toBe('PORTAL_INVALID_ARGUMENT');
    expect(slash.body.error.message).toBe(
      'actor id "a/b" (sent as "a%2Fb") is refused: an actor id goes into the URL as it is only when it has nothing but letters, digits, "_", "-" and "." (not first); it has "/", which is not among them. Any other id is sent as "~" followed by the base64url of its UTF-8 bytes (encodeActorId in runtime/state-keys.ts; createDaprActorClient does it); send this id as "~YS9i". Percent-encoding is not enough: daprd decodes the path before it routes it (an encoded "/" becomes a separator)',
    );
    // the form the message names reaches the actor `a/b`
    const ok = await fetch(`http://127.0.0.1:${port}/v1.0/actors/ProbeActor/~YS9i/method/whoAmI`, {
      method: 'POST',
    });
    expect(await ok.json()).toBe('a/b');
    expect((await post('.hidden')).body.error.message).toContain('it begins with "."');
    expect((await post('~QQ')).body.error.message).toContain(
      '"~" begins an encoded id, and "QQ" is not the base64url (unpadded) of the UTF-8 of an id that needs encoding',
    );
    expect((await post('a%20b%7Cc')).body.error.message).toContain(
      'it has " ", "|", which are not among them',
    );
  } finally {
    child.kill('SIGTERM');
    await exited;
  }
}, 90_000);

// `portal serve --runtime embedded` with a call in flight whose turn never ends must still exit on
// SIGTERM, within its drain timeout (it ignored SIGTERM for 15 s and more).
test('portal serve --runtime embedded exits on SIGTERM within its drain timeout while a turn never ends', async () => {
  const { port, child, exited } = await serveEmbedded(['--drain-timeout', '1s']);
  try {
    const url = `http://127.0.0.1:${port}/v1.0/actors/ProbeActor/stuck/method/hang`;
    const answer = fetch(url, {
      method: 'POST',
      body: '600000',
      headers: { 'content-type': 'application/json' },
    })
      .then(async (r) => ({ status: r.status, text: await r.text() }))
      .catch((err: unknown) => ({ status: 0, text: String(err) }));
    await new Promise((r) => setTimeout(r, 300));
    const t0 = Date.now();
    child.kill('SIGTERM');
    const { code, at } = await exited;
    expect(code).toBe(0);
    expect(at - t0).toBeLessThan(1000 + 1500); // the 1 s drain, then the rest of the shutdown
    const r = await answer;
    expect(r.status).not.toBe(200); // the caller was released with an error, not left hanging
    expect(r.text).toContain('PORTAL_HOST_STOPPED');
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
  }
}, 90_000);
