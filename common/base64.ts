/** Standard base64 (RFC 4648 §4): groups of four characters of A–Z a–z 0–9 + /, the last one `=`-padded. */
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/**
 * True when `text` is standard, padded base64. Node's `Buffer.from(text, 'base64')` never refuses: it skips any
 * character outside the alphabet and stops at the first `=`, so `"!!!!"` decodes to no bytes and `"====AAAA"` to
 * none; a field documented as base64 is checked with this first, and refused naming itself.
 */
export function isBase64(text: string): boolean {
  return BASE64.test(text);
}
