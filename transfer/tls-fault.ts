/**
 * The phrase a TLS failure of a source gives, on one line: the code, what it means in words for `host`, and what
 * to do (`--ca FILE`, NODE_EXTRA_CA_CERTS, `--insecure`, http:// instead of https://). OpenSSL's own text (several
 * lines, with its source paths) never reaches it.
 */

/** The CA remedy shared by every "not trusted" cause. */
const TRUST =
  'give --ca FILE (its PEM certificate or CA) or NODE_EXTRA_CA_CERTS=FILE to trust it, or --insecure to skip verification';

const UNTRUSTED_CA = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_UNTRUSTED',
]);

/** One line of `text`: control characters (OpenSSL's trailing newline) become spaces, runs of them one. */
export function oneLine(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\u0000-\u001f\u007f]+/g, ' ').trim();
}

/**
 * The TLS cause of `err` (a Node or undici error) in words, for the source at `url` (its host named), or
 * undefined when `err` is not a TLS failure. Never throws.
 */
export function tlsFaultPhrase(err: unknown, url?: string | URL): string | undefined {
  const e = err as {
    code?: unknown;
    message?: unknown;
    cert?: { subjectaltname?: unknown; valid_to?: unknown };
  };
  const code = typeof e?.code === 'string' ? e.code : '';
  const msg = oneLine(typeof e?.message === 'string' ? e.message : String(err));
  const wrongVersion =
    code === 'ERR_SSL_WRONG_VERSION_NUMBER' ||
    code === 'ERR_SSL_PACKET_LENGTH_TOO_LONG' ||
    code === 'ERR_SSL_HTTP_REQUEST' ||
    /wrong version number|packet length too long|http request/i.test(msg);
  if (
    !wrongVersion &&
    !/CERT|SSL|TLS|SELF_SIGNED|UNABLE_TO_VERIFY|HOSTNAME/i.test(code) &&
    !/certificate|SSL routines/i.test(msg)
  )
    return undefined;
  let host = 'the server';
  let hostname = host;
  try {
    if (url !== undefined) ({ host, hostname } = new URL(url));
  } catch {
    // not a URL: "the server"
  }
  const tag = `TLS: ${code || 'error'}`;
  if (wrongVersion)
    return `${tag}: ${host} does not speak TLS on this port (a plain-HTTP server answered the TLS handshake): use http:// for it, or the port that serves https`;
  if (code === 'DEPTH_ZERO_SELF_SIGNED_CERT' || code === 'SELF_SIGNED_CERT_IN_CHAIN')
    return `${tag}: the certificate of ${host} is self-signed${code === 'SELF_SIGNED_CERT_IN_CHAIN' ? ' (its chain ends in a self-signed CA)' : ''}, so nothing vouches for it: ${TRUST}`;
  if (UNTRUSTED_CA.has(code))
    return `${tag}: the certificate of ${host} is signed by a CA this machine does not trust: ${TRUST}`;
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID' || code === 'HOSTNAME_MISMATCH') {
    const names = typeof e.cert?.subjectaltname === 'string' ? e.cert.subjectaltname : '';
    return `${tag}: the certificate of ${host} is for another name${names ? ` (${oneLine(names)})` : ''}, not ${hostname}: use a name the certificate gives, or --insecure to skip verification`;
  }
  if (code === 'CERT_HAS_EXPIRED' || code === 'CERT_NOT_YET_VALID') {
    const until = typeof e.cert?.valid_to === 'string' ? ` (valid until ${e.cert.valid_to})` : '';
    return `${tag}: the certificate of ${host} ${code === 'CERT_HAS_EXPIRED' ? `has expired${until}` : "is not valid yet (check this machine's clock)"}: the server must renew it, or give --insecure to skip verification`;
  }
  return `${tag}: the TLS handshake with ${host} failed (${msg}): ${TRUST}`;
}
