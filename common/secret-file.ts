import { readFileSync } from 'node:fs';
import { PortalError } from './errors.js';

/**
 * The secret (a token, a password, a key) in `file`, its trailing newline dropped; `origin` names where the path
 * came from (`--api-token-file`, `env PORTAL_API_TOKEN_FILE`). Throws PORTAL_CONFIG_INVALID naming the origin, the
 * path and the error code when it cannot be read; never shows the contents.
 */
export function readSecretFile(file: string, origin: string): string {
  try {
    return readFileSync(file, 'utf8').replace(/\r?\n$/, '');
  } catch (cause) {
    throw new PortalError(
      'PORTAL_CONFIG_INVALID',
      `${origin} ${file}: cannot read it (${(cause as NodeJS.ErrnoException).code ?? String(cause)})`,
      { cause },
    );
  }
}
