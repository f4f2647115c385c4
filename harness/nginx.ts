import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { userInfo } from 'node:os';
import { freePort, killGroup, waitForPort } from './redis.js';

/** An nginx of this test run serving one folder over HTTP (and HTTPS when given a certificate). */
export interface TestNginx {
  /** http://127.0.0.1:PORT */
  readonly httpUrl: string;
  /** https://127.0.0.1:PORT when TLS was asked for. */
  readonly httpsUrl?: string;
  stop(): Promise<void>;
}

/** The nginx binary (Debian puts it in /usr/sbin, often not on a user's PATH). */
export function nginxBinary(): string {
  return existsSync('/usr/sbin/nginx') ? '/usr/sbin/nginx' : 'nginx';
}

/**
 * Starts Debian's nginx in the foreground on free ports with a temp config serving `root` (Range support is
 * nginx's own). `extra` is added inside the server blocks (e.g. `location /old { return 302 …; }`).
 * Needs `nginx` (scripts/setup.d/45-mirrors.sh installs it).
 */
export async function startNginx(opts: {
  root: string;
  tls?: { certFile: string; keyFile: string };
  extra?: string;
}): Promise<TestNginx> {
  const dir = await mkdtemp(join(tmpdir(), 'portal-nginx-'));
  await mkdir(join(dir, 'tmp'), { recursive: true });
  const httpPort = await freePort();
  const httpsPort = opts.tls ? await freePort() : undefined;
  const common = `root ${opts.root}; access_log off; ${opts.extra ?? ''}`;
  const conf = `
daemon off;
${process.getuid?.() === 0 ? `user ${userInfo().username};` : ''}
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 256; }
http {
  client_body_temp_path ${dir}/tmp; proxy_temp_path ${dir}/tmp; fastcgi_temp_path ${dir}/tmp;
  uwsgi_temp_path ${dir}/tmp; scgi_temp_path ${dir}/tmp;
  default_type application/octet-stream;
  server { listen 127.0.0.1:${httpPort}; ${common} }
  ${opts.tls ? `server { listen 127.0.0.1:${httpsPort} ssl; ssl_certificate ${opts.tls.certFile}; ssl_certificate_key ${opts.tls.keyFile}; ${common} }` : ''}
}`;
  await writeFile(join(dir, 'nginx.conf'), conf);
  const child: ChildProcess = spawn(
    nginxBinary(),
    ['-p', dir, '-c', join(dir, 'nginx.conf'), '-e', join(dir, 'error.log')],
    {
      stdio: ['ignore', 'ignore', 'inherit'],
      detached: true,
    },
  );
  child.once('error', () => undefined);
  try {
    await waitForPort(httpPort, 15_000, `nginx on ${httpPort}`);
    if (httpsPort) await waitForPort(httpsPort, 15_000, `nginx TLS on ${httpsPort}`);
  } catch (err) {
    await killGroup(child);
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
  return {
    httpUrl: `http://127.0.0.1:${httpPort}`,
    httpsUrl: httpsPort ? `https://127.0.0.1:${httpsPort}` : undefined,
    async stop() {
      await killGroup(child, 'SIGTERM');
      await rm(dir, { recursive: true, force: true });
    },
  };
}
