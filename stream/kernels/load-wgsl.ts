import { PortalError } from '../../common/errors.js';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** The text of `stream/kernels/<file>`, beside this module or in the source tree (tsc does not copy .wgsl into dist/). */
export function loadStreamWgsl(file: string): string {
  const tries = [
    new URL(`./${file}`, import.meta.url),
    new URL(`../../../stream/kernels/${file}`, import.meta.url),
  ];
  for (const u of tries) {
    try {
      return readFileSync(fileURLToPath(u), 'utf8');
    } catch {
      /* next location */
    }
  }
  throw new PortalError(
    'PORTAL_STREAM_KERNEL_UNAVAILABLE',
    `WGSL source ${file} not found (looked in ${tries.map((u) => fileURLToPath(u)).join(', ')})`,
  );
}
