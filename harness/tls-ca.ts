import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** A private CA made by openssl for one test run, and a server certificate it signed for 127.0.0.1/localhost. */
export interface TestCa {
  dir: string;
  /** PEM file of the CA certificate (what `--ca` takes). */
  caFile: string;
  caPem: string;
  /** Server certificate and key files (nginx, `portal edge --tls-cert/--tls-key`). */
  certFile: string;
  keyFile: string;
  cleanup(): Promise<void>;
}

/** Makes a CA and a leaf certificate (SAN IP:127.0.0.1, DNS:localhost) with the openssl command-line tool. */
export async function makeTestCa(): Promise<TestCa> {
  const dir = await mkdtemp(join(tmpdir(), 'portal-ca-'));
  const f = (n: string): string => join(dir, n);
  const ossl = (...args: string[]) => run('openssl', args, { cwd: dir });
  await ossl(
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    f('ca.key'),
    '-out',
    f('ca.pem'),
    '-days',
    '2',
    '-subj',
    '/CN=Portal test CA',
  );
  await ossl(
    'req',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    f('server.key'),
    '-out',
    f('server.csr'),
    '-subj',
    '/CN=localhost',
  );
  await writeFile(f('ext.cnf'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n');
  await ossl(
    'x509',
    '-req',
    '-in',
    f('server.csr'),
    '-CA',
    f('ca.pem'),
    '-CAkey',
    f('ca.key'),
    '-CAcreateserial',
    '-out',
    f('server.pem'),
    '-days',
    '2',
    '-extfile',
    f('ext.cnf'),
  );
  return {
    dir,
    caFile: f('ca.pem'),
    caPem: await readFile(f('ca.pem'), 'utf8'),
    certFile: f('server.pem'),
    keyFile: f('server.key'),
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
}
