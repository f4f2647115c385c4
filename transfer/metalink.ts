import { open } from 'node:fs/promises';
import { createRequire } from 'node:module';
import type * as Fxp from 'fast-xml-parser';
import { PortalError } from '../common/errors.js';
import { BIDI_CONTROL, escapeControl } from '../common/redact.js';
import { isNoCid, NO_CID } from './cid.js';
import { manifestId, MIN_CHUNK_SIZE, MAX_CHUNK_SIZE, type Manifest } from './manifest.js';

/**
 * Largest Metalink document Portal reads or parses, in bytes (32 MiB): its XML is validated and parsed whole, at
 * several times its size in memory, so a larger one (or an endless one: /dev/zero, a FIFO) is refused with
 * PORTAL_MANIFEST_TOO_LARGE naming the cap before it is parsed, and a file is read no further than the cap. 32 MiB
 * holds some 300 000 piece hashes: a 4.5 TiB file in 16 MiB pieces.
 */
export const METALINK_MAX_BYTES = 32 * 1024 * 1024;

/** Options of parseMetalink and loadMetalink. */
export interface MetalinkReadOptions {
  /** Largest document accepted, in bytes (default METALINK_MAX_BYTES). */
  maxBytes?: number;
}

const metalinkTooLarge = (source: string, max: number): PortalError =>
  new PortalError(
    'PORTAL_MANIFEST_TOO_LARGE',
    `${source}: the Metalink is larger than ${max} bytes (METALINK_MAX_BYTES), the most Portal reads`,
  );

/**
 * The error for a sha-256 of 64 zeros in a Metalink (`what`: which hash): PORTAL_MANIFEST_INVALID. That value is
 * Portal's "no hash known" marker (NO_CID): taken as given it would switch the check of that file or piece off.
 */
const allZero = (source: string, name: string, what: string): PortalError =>
  new PortalError(
    'PORTAL_MANIFEST_INVALID',
    `${source}: file ${name}: ${what} is all zeros, which is no real sha-256 (Portal reads it as "no hash known" and would check nothing): the Metalink is wrong`,
  );

/** The Metalink v4 namespace (RFC 5854 §4). */
export const METALINK_NS = 'urn:ietf:params:xml:ns:metalink';

/** One `<url>` of a Metalink file: where, how preferred (priority 1 = best, RFC 5854 §4.2.16) and where on Earth. */
export interface MetalinkUrl {
  url: string;
  priority?: number;
  /** ISO 3166-1 alpha-2 country code. */
  location?: string;
}

/** One `<file>` of a Metalink document, with the hashes Portal uses (sha-256). */
export interface MetalinkFile {
  name: string;
  size?: number;
  /** Whole-file sha-256 hex, when the document gives one. */
  sha256?: string;
  /** `<pieces type="sha-256" length=N>`: piece length and hashes, when given. */
  pieces?: { length: number; hashes: string[] };
  /**
   * The strongest whole-file hash of another type the document gives (RFC 5854 §4.2.4, IANA "Hash Function
   * Textual Names": sha-512, sha-384, sha-1, md5 in that order), lowercase hex: when there is no sha-256 the
   * file is checked against it once complete (as aria2c does).
   */
  otherHash?: { type: OtherHashType; hex: string };
  urls: MetalinkUrl[];
}

/** Whole-file hash types Portal checks besides sha-256, strongest first, with their hex lengths. */
export const OTHER_HASH_TYPES = { 'sha-512': 128, 'sha-384': 96, 'sha-1': 40, md5: 32 } as const;
export type OtherHashType = keyof typeof OTHER_HASH_TYPES;

const HEX64 = /^[0-9a-fA-F]{64}$/;

const require = createRequire(import.meta.url);
let xmlCache: { fxp: typeof Fxp; parser: Fxp.XMLParser } | undefined;
/**
 * fast-xml-parser and the Metalink parser, loaded on first use: every `portal fetch` imports this module through
 * transfer/index.ts, and only a Metalink input needs XML (its ESM build is 30 files, ~0.03 s and ~2 MB of a
 * start; its CommonJS build is one file).
 */
function xmlLib(): { fxp: typeof Fxp; parser: Fxp.XMLParser } {
  if (xmlCache) return xmlCache;
  const fxp = require('fast-xml-parser') as typeof Fxp;
  const parser = new fxp.XMLParser({
    ignoreAttributes: false,
    attributeNamePrefix: '@',
    removeNSPrefix: false, // keep prefixes and xmlns: resolveNamespaces matches namespace URI + local name
    isArray: (name) => REPEATED.has(localName(name)),
    parseTagValue: false,
    trimValues: true,
    // numeric character references (&#233; &#x41;) decoded, as any XML parser does; external entities stay refused
    htmlEntities: true,
  });
  return (xmlCache = { fxp, parser });
}

/** Metalink elements that may repeat, by local name: always arrays in the parsed tree. */
const REPEATED = new Set(['file', 'url', 'hash', 'metaurl']);
/** The local part of a qualified XML name (`m:file` → `file`). */
const localName = (qname: string): string => qname.slice(qname.indexOf(':') + 1);
/** The namespace the `xml` prefix is bound to without a declaration (Namespaces in XML 1.0 §3). */
const XML_NS = 'http://www.w3.org/XML/1998/namespace';

/**
 * One element of fast-xml-parser's tree (`removeNSPrefix: false`) rewritten by namespace: its child elements in
 * the Metalink v4 namespace keyed by local name (`<m:file>` with `xmlns:m="urn:ietf:params:xml:ns:metalink"`,
 * or `<file>` under that default namespace, both become `file`), elements of any other namespace dropped (RFC 5854
 * §4: foreign markup is ignored, as aria2c's libxml2 reader does), unprefixed attributes kept (Metalink's
 * attributes have no namespace), prefixed ones and declarations dropped. `scope` maps prefixes ('' = default) to
 * URIs, an empty URI meaning none (`xmlns=""`), with `node`'s own declarations already in it. Throws PORTAL_MANIFEST_INVALID naming `source` for a prefix that
 * is not declared (a document that is not namespace-well-formed).
 */
function resolveNamespaces(node: unknown, scope: ReadonlyMap<string, string>, source: string): unknown {
  if (typeof node !== 'object' || node === null) return node; // a text-only element: its text
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(node as Record<string, unknown>)) {
    if (k === '#text') out[k] = v;
    else if (k.startsWith('@')) {
      if (!k.includes(':') && k !== '@xmlns') out[k] = v;
    } else
      for (const child of Array.isArray(v) ? v : [v]) {
        // a child's own declarations apply to its own name (`<ml:file xmlns:ml="…">`)
        const inner =
          typeof child === 'object' && child !== null
            ? withDeclarations(child as Record<string, unknown>, scope)
            : scope;
        if (elementNamespace(k, inner, source) !== METALINK_NS) continue;
        const local = localName(k);
        const prev = out[local];
        const all = [
          ...(prev === undefined ? [] : Array.isArray(prev) ? (prev as unknown[]) : [prev]),
          resolveNamespaces(child, inner, source),
        ];
        out[local] = REPEATED.has(local) || all.length > 1 ? all : all[0];
      }
  }
  return out;
}

/** `scope` with the namespace declarations (`xmlns`, `xmlns:p`) of element `el` added. */
function withDeclarations(
  el: Record<string, unknown>,
  scope: ReadonlyMap<string, string>,
): Map<string, string> {
  const inner = new Map(scope);
  for (const [k, v] of Object.entries(el))
    if (k === '@xmlns' || k.startsWith('@xmlns:')) inner.set(k === '@xmlns' ? '' : k.slice(7), String(v));
  return inner;
}

/** The namespace URI of element `qname` in `scope` (undefined: none); throws for an undeclared prefix. */
function elementNamespace(
  qname: string,
  scope: ReadonlyMap<string, string>,
  source: string,
): string | undefined {
  const colon = qname.indexOf(':');
  const prefix = colon < 0 ? '' : qname.slice(0, colon);
  const uri = scope.get(prefix);
  if (uri === undefined && prefix !== '')
    throw new PortalError(
      'PORTAL_MANIFEST_INVALID',
      `${source}: not well-formed XML (the namespace prefix "${prefix}" of <${qname}> is not declared)`,
    );
  return uri || undefined;
}

const asArray = <T>(v: T | T[] | undefined): T[] => (v === undefined ? [] : Array.isArray(v) ? v : [v]);
const text = (v: unknown): string =>
  typeof v === 'string'
    ? v
    : typeof v === 'object' && v && '#text' in v
      ? String((v as Record<string, unknown>)['#text'])
      : '';

/**
 * Parses a Metalink v4 document (RFC 5854): its files, sizes, sha-256 file and piece hashes and URLs (sorted by
 * priority). Elements are matched by namespace URI + local name, whatever prefix binds the v4 namespace
 * (`<m:metalink xmlns:m="urn:ietf:params:xml:ns:metalink">` as well as the default one); elements of other namespaces
 * are ignored. Throws PORTAL_MANIFEST_INVALID naming `source` for XML that is not well formed (an undeclared prefix
 * too), a root that is not `<metalink>` in the v4 namespace, or a file without a name or URL; PORTAL_MANIFEST_TOO_LARGE, before it is
 * parsed, for a document over `opts.maxBytes` (METALINK_MAX_BYTES) bytes of UTF-8.
 */
export function parseMetalink(
  xml: string,
  source = 'metalink',
  opts: MetalinkReadOptions = {},
): MetalinkFile[] {
  const max = opts.maxBytes ?? METALINK_MAX_BYTES;
  // a UTF-16 unit is at most 3 bytes of UTF-8: the exact count only when the length alone cannot decide
  if (xml.length > max || (xml.length * 3 > max && Buffer.byteLength(xml, 'utf8') > max))
    throw metalinkTooLarge(source, max);
  const { fxp, parser } = xmlLib();
  const valid = fxp.XMLValidator.validate(xml);
  if (valid !== true)
    throw new PortalError(
      'PORTAL_MANIFEST_INVALID',
      `${source}: not well-formed XML (line ${valid.err.line}: ${valid.err.msg})`,
    );
  // A DOCTYPE is refused whatever it declares: a Metalink needs none, and the parser would expand its internal
  // entities in some places (attributes, a URL's text) and not others (nested ones), so a file named `&lol2;` or a
  // URL the reader never saw could come out of it. Outside comments and CDATA sections (the XML is well formed
  // here, so `<!DOCTYPE` can be nowhere else but markup).
  const markup = xml.replace(/<!--[\s\S]*?-->|<!\[CDATA\[[\s\S]*?\]\]>/g, '');
  if (/<!DOCTYPE/i.test(markup))
    throw new PortalError(
      'PORTAL_MANIFEST_INVALID',
      `${source}: a DOCTYPE is refused (a Metalink needs none; its entities are not expanded)`,
    );
  // without a DOCTYPE only XML's five entities exist: another (`&lol;`, an HTML one like `&copy;`) is not
  // declared (XML 1.0 WFC: Entity Declared), and the parser would keep it literally or read it as HTML
  const undeclared = /&(?!(?:amp|lt|gt|quot|apos);)([A-Za-z_:][\w.:-]*);/.exec(markup);
  if (undeclared)
    throw new PortalError(
      'PORTAL_MANIFEST_INVALID',
      `${source}: not well-formed XML (the entity ${undeclared[0]} is not declared; XML has only &amp; &lt; &gt; &quot; &apos; and numeric references)`,
    );
  // XML 1.0 §2.2 allows no control character but tab, LF and CR, even by reference (the parser would drop it)
  for (const m of xml.matchAll(/&#(x[0-9a-fA-F]+|[0-9]+);/g)) {
    const c = m[1].startsWith('x') ? Number.parseInt(m[1].slice(1), 16) : Number(m[1]);
    if ((c < 0x20 && c !== 0x9 && c !== 0xa && c !== 0xd) || c > 0x10ffff)
      throw new PortalError(
        'PORTAL_MANIFEST_INVALID',
        `${source}: not well-formed XML (the character reference ${m[0]} names a character XML does not allow)`,
      );
  }
  let doc: Record<string, unknown>;
  try {
    doc = parser.parse(xml) as Record<string, unknown>;
  } catch (err) {
    throw new PortalError(
      'PORTAL_MANIFEST_INVALID',
      `${source}: cannot be read as a Metalink (${(err as Error).message})`,
    );
  }
  // elements are matched by namespace URI + local name, whatever prefix the document binds (`<m:metalink
  // xmlns:m="…">` is the same element as `<metalink xmlns="…">`, and aria2c reads both)
  const rootName = Object.keys(doc).find((k) => !k.startsWith('?') && !k.startsWith('#'));
  if (rootName === undefined || localName(rootName) !== 'metalink')
    throw new PortalError('PORTAL_MANIFEST_INVALID', `${source}: the root element is not <metalink>`);
  const rootEl = doc[rootName];
  // an empty root without attributes parses as its text ''
  const rootObj = (typeof rootEl === 'object' && rootEl ? rootEl : {}) as Record<string, unknown>;
  const rootScope = withDeclarations(rootObj, new Map([['xml', XML_NS]]));
  const rootNs = elementNamespace(rootName, rootScope, source);
  if (rootNs !== METALINK_NS)
    throw new PortalError(
      'PORTAL_MANIFEST_INVALID',
      `${source}: expected Metalink v4 (<${rootName}> in namespace "${METALINK_NS}"), got namespace ${JSON.stringify(rootNs ?? null)}`,
    );
  const root = resolveNamespaces(rootObj, rootScope, source) as Record<string, unknown>;
  const files = asArray(root.file as Record<string, unknown>[] | undefined);
  if (files.length === 0) throw new PortalError('PORTAL_MANIFEST_INVALID', `${source}: no <file> element`);
  return files.map((f, i) => {
    const name = typeof f['@name'] === 'string' ? f['@name'] : '';
    // eslint-disable-next-line no-control-regex
    if (/[\u0000-\u001f\u007f]/.test(name))
      throw new PortalError(
        'PORTAL_MANIFEST_INVALID',
        `${source}: file [${i}] has a control character in its name (${JSON.stringify(name)})`,
      );
    if (BIDI_CONTROL.test(name))
      throw new PortalError(
        'PORTAL_MANIFEST_INVALID',
        `${source}: file [${i}] has a bidi control character in its name ("${escapeControl(name)}"), which reorders how the name is shown (a<U+202E>nib.exe shows as aexe.bin)`,
      );
    if (!name || name.includes('/../') || name.startsWith('/') || name.startsWith('../'))
      throw new PortalError(
        'PORTAL_MANIFEST_INVALID',
        `${source}: file [${i}] has no safe name (${JSON.stringify(name)})`,
      );
    const sizeText = text(f.size);
    const size = sizeText ? Number(sizeText) : undefined;
    if (size !== undefined && (!Number.isSafeInteger(size) || size < 0))
      throw new PortalError(
        'PORTAL_MANIFEST_INVALID',
        `${source}: file ${name}: bad <size> ${JSON.stringify(sizeText)}`,
      );
    const sha = asArray(f.hash as unknown[]).find(
      (h) => typeof h === 'object' && (h as Record<string, unknown>)['@type'] === 'sha-256',
    );
    const sha256 = sha ? text(sha).toLowerCase() : undefined;
    if (sha256 !== undefined && !HEX64.test(sha256))
      throw new PortalError(
        'PORTAL_MANIFEST_INVALID',
        `${source}: file ${name}: sha-256 hash is not 64 hex characters`,
      );
    if (sha256 !== undefined && isNoCid(sha256)) throw allZero(source, name, 'its <hash type="sha-256">');
    let otherHash: MetalinkFile['otherHash'];
    for (const type of Object.keys(OTHER_HASH_TYPES) as OtherHashType[]) {
      const h = asArray(f.hash as unknown[]).find(
        (x) => typeof x === 'object' && (x as Record<string, unknown>)['@type'] === type,
      );
      if (h === undefined) continue;
      const hex = text(h).toLowerCase();
      if (!new RegExp(`^[0-9a-f]{${OTHER_HASH_TYPES[type]}}$`).test(hex))
        throw new PortalError(
          'PORTAL_MANIFEST_INVALID',
          `${source}: file ${name}: ${type} hash is not ${OTHER_HASH_TYPES[type]} hex characters`,
        );
      otherHash = { type, hex };
      break;
    }
    let pieces: MetalinkFile['pieces'];
    const p = asArray(f.pieces as Record<string, unknown>[] | undefined).find(
      (x) => x['@type'] === 'sha-256',
    );
    if (p) {
      const length = Number(p['@length']);
      const hashes = asArray(p.hash as unknown[]).map((h) => text(h).toLowerCase());
      if (!Number.isSafeInteger(length) || length < 1 || hashes.some((h) => !HEX64.test(h)))
        throw new PortalError(
          'PORTAL_MANIFEST_INVALID',
          `${source}: file ${name}: malformed sha-256 <pieces>`,
        );
      const zero = hashes.findIndex(isNoCid);
      if (zero >= 0) throw allZero(source, name, `its sha-256 <pieces> hash ${zero}`);
      pieces = { length, hashes };
    }
    const urls = asArray(f.url as unknown[])
      .map((u): MetalinkUrl => {
        const o = (typeof u === 'object' ? u : {}) as Record<string, unknown>;
        const pr = o['@priority'] !== undefined ? Number(o['@priority']) : undefined;
        return {
          url: text(u).trim(),
          ...(pr !== undefined && Number.isFinite(pr) ? { priority: pr } : {}),
          ...(typeof o['@location'] === 'string' ? { location: o['@location'] } : {}),
        };
      })
      .filter((u) => /^https?:\/\//i.test(u.url))
      .sort((a, b) => (a.priority ?? 999999) - (b.priority ?? 999999));
    if (urls.length === 0)
      throw new PortalError('PORTAL_MANIFEST_INVALID', `${source}: file ${name} has no http(s) <url>`);
    return { name, size, sha256, pieces, urls, ...(otherHash && !sha256 ? { otherHash } : {}) };
  });
}

/**
 * Reads and parses a `.meta4` file; PORTAL_MANIFEST_INVALID naming the path when it cannot be read or parsed,
 * PORTAL_MANIFEST_TOO_LARGE when it holds more than `opts.maxBytes` (METALINK_MAX_BYTES) bytes: known from a regular
 * file's size before any byte is read, and for a device or FIFO after at most that many bytes and one more.
 */
export async function loadMetalink(path: string, opts: MetalinkReadOptions = {}): Promise<MetalinkFile[]> {
  const max = opts.maxBytes ?? METALINK_MAX_BYTES;
  let xml: string;
  try {
    const fh = await open(path, 'r');
    try {
      const st = await fh.stat();
      if (st.isFile() && st.size > max) throw metalinkTooLarge(path, max);
      const parts: Buffer[] = [];
      let size = 0;
      for (;;) {
        const buf = Buffer.allocUnsafe(Math.min(1 << 20, max + 1 - size));
        const { bytesRead } = await fh.read(buf, 0, buf.length, null);
        if (bytesRead === 0) break;
        parts.push(buf.subarray(0, bytesRead));
        size += bytesRead;
        if (size > max) throw metalinkTooLarge(path, max);
      }
      xml = Buffer.concat(parts, size).toString('utf8');
    } finally {
      await fh.close();
    }
  } catch (cause) {
    if (cause instanceof PortalError) throw cause;
    throw new PortalError('PORTAL_MANIFEST_INVALID', `${path}: cannot read the Metalink file`, { cause });
  }
  return parseMetalink(xml, path, { maxBytes: max });
}

/**
 * Why manifestFromMetalink found no manifest in `f` (its piece hashes cannot check the chunks), in words for a
 * warning: no sha-256 pieces, pieces of a length outside MIN_CHUNK_SIZE..MAX_CHUNK_SIZE (4 KiB..64 MiB), or
 * pieces without a `<size>`.
 */
export function metalinkPiecesUnused(f: MetalinkFile): string {
  if (!f.pieces) return 'the Metalink has no sha-256 piece hashes';
  const { length } = f.pieces;
  if (length < MIN_CHUNK_SIZE || length > MAX_CHUNK_SIZE)
    return `the Metalink's sha-256 pieces of ${length} bytes are outside the supported 4 KiB–64 MiB (${MIN_CHUNK_SIZE}–${MAX_CHUNK_SIZE} bytes): its piece hashes are not used`;
  return 'the Metalink has sha-256 piece hashes but no <size>: its piece hashes are not used';
}

/**
 * The Portal manifest a Metalink file describes, when it has sha-256 piece hashes of a size Portal can use
 * (4 KiB..64 MiB) and a size; otherwise undefined (the file is then fetched like mirrors without a manifest,
 * verified by its sha-256 when given). Throws PORTAL_MANIFEST_INVALID when the pieces do not cover the size.
 */
export function manifestFromMetalink(f: MetalinkFile): Manifest | undefined {
  if (!f.pieces || f.size === undefined) return undefined;
  const { length, hashes } = f.pieces;
  if (length < MIN_CHUNK_SIZE || length > MAX_CHUNK_SIZE) return undefined;
  if (hashes.length !== Math.ceil(f.size / length))
    throw new PortalError(
      'PORTAL_MANIFEST_INVALID',
      `${f.name}: ${hashes.length} sha-256 pieces of ${length} bytes cannot cover ${f.size} bytes`,
    );
  const fileSha256 = f.sha256 ?? NO_CID;
  return {
    version: 1,
    id: manifestId(fileSha256, length),
    name: f.name.split('/').pop()!,
    fileSize: f.size,
    chunkSize: length,
    fileSha256,
    chunks: hashes,
  };
}

/**
 * Writes a Metalink v4 document for a manifest and the URLs it can be fetched from: `<size>`, the whole-file
 * `<hash type="sha-256">`, `<pieces type="sha-256">` with the chunk hashes, and one `<url>` per mirror (priority
 * in the order given, 1 = first). Throws PORTAL_INVALID_ARGUMENT when no URL is given or one is not http(s).
 */
export function toMetalink(m: Manifest, urls: MetalinkUrl[], opts: { generator?: string } = {}): string {
  if (!Array.isArray(urls) || urls.length === 0)
    throw new PortalError('PORTAL_INVALID_ARGUMENT', 'urls: expected at least one http(s) URL');
  for (const u of urls)
    if (!/^https?:\/\//i.test(u.url))
      throw new PortalError(
        'PORTAL_INVALID_ARGUMENT',
        `urls: expected http(s) URLs, got ${JSON.stringify(u.url)}`,
      );
  const builder = new (xmlLib().fxp.XMLBuilder)({
    ignoreAttributes: false,
    attributeNamePrefix: '@',
    format: true,
    indentBy: '  ',
    suppressEmptyNode: true,
  });
  const hasFileHash = m.fileSha256 !== NO_CID;
  const hasPieces = m.chunks.every((c) => c !== NO_CID);
  const doc = {
    '?xml': { '@version': '1.0', '@encoding': 'UTF-8' },
    metalink: {
      '@xmlns': METALINK_NS,
      generator: opts.generator ?? 'Portal',
      published: new Date().toISOString().replace(/\.\d{3}Z$/, 'Z'),
      file: {
        '@name': m.name,
        size: String(m.fileSize),
        ...(hasFileHash ? { hash: { '@type': 'sha-256', '#text': m.fileSha256 } } : {}),
        ...(hasPieces && m.chunks.length > 0
          ? { pieces: { '@length': String(m.chunkSize), '@type': 'sha-256', hash: m.chunks } }
          : {}),
        url: urls.map((u, i) => ({
          '@priority': String(u.priority ?? i + 1),
          ...(u.location ? { '@location': u.location } : {}),
          '#text': u.url,
        })),
      },
    },
  };
  return builder.build(doc);
}
