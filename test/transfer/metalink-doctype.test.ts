/**
 * README: "A DOCTYPE with entities … is refused (exit 2)". A trial found internal entities accepted and half
 * expanded: `<file name="&lol2;">` gave a file literally named `&lol2;`, `<url>&u;</url>` was expanded and fetched,
 * a nested one in a URL was left literal. Any DOCTYPE is now refused, and so is a reference to an entity that
 * is not declared (only XML's five exist without a DOCTYPE), which the parser kept literally or read as HTML.
 */
import { parseMetalink } from '../../transfer/metalink.js';

const ns = 'urn:ietf:params:xml:ns:metalink';
const body = (name: string, url: string): string =>
  `<metalink xmlns="${ns}"><file name="${name}"><url>${url}</url></file></metalink>`;
const DOCTYPE_REFUSED =
  'm.meta4: a DOCTYPE is refused (a Metalink needs none; its entities are not expanded)';

const failure = (xml: string): { code?: string; message?: string } => {
  try {
    parseMetalink(xml, 'm.meta4');
  } catch (e) {
    return e as { code?: string; message?: string };
  }
  throw new Error('accepted');
};

test('a DOCTYPE is refused whatever it declares: internal entities in a name, in a URL, nested, none at all', () => {
  const cases = [
    // the trial's billion laughs, in the file name (was: a file named "&lol2;")
    `<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>${body('&lol2;', 'http://h/f')}`,
    // an internal entity as the URL (was: expanded and fetched)
    `<?xml version="1.0"?><!DOCTYPE metalink [<!ENTITY u "http://127.0.0.1:1/file">]>${body('f.bin', '&u;')}`,
    // nested, in a URL (was: left literal, fetched as http://h/x&l6;)
    `<!DOCTYPE m [<!ENTITY l1 "a"><!ENTITY l6 "&l1;&l1;">]>${body('f.bin', 'http://h/x&l6;')}`,
    // external (was refused by the parser with its own words)
    `<!DOCTYPE metalink [<!ENTITY x SYSTEM "file:///etc/hostname">]>${body('f.bin', 'http://h/&x;')}`,
    // no entity at all
    `<!DOCTYPE metalink>${body('f.bin', 'http://h/f')}`,
  ];
  for (const xml of cases)
    expect(failure(xml)).toMatchObject({ code: 'PORTAL_MANIFEST_INVALID', message: DOCTYPE_REFUSED });
  // the keyword in lower case is not XML at all
  expect(failure(`<!doctype metalink>${body('f.bin', 'http://h/f')}`).code).toBe('PORTAL_MANIFEST_INVALID');
});

test('a reference to an undeclared entity is refused, naming it (was kept literally, or read as HTML)', () => {
  expect(failure(body('a&foo;b', 'http://h/f'))).toMatchObject({
    code: 'PORTAL_MANIFEST_INVALID',
    message:
      'm.meta4: not well-formed XML (the entity &foo; is not declared; XML has only &amp; &lt; &gt; &quot; &apos; and numeric references)',
  });
  expect(failure(body('f.bin', 'http://h/x&l6;')).message).toContain('the entity &l6; is not declared');
  expect(failure(body('a&copy;b', 'http://h/f')).message).toContain('the entity &copy; is not declared');
});

test("XML's own entities and numeric references still read; DOCTYPE or &x; inside a comment or CDATA is text", () => {
  const [f] = parseMetalink(
    body('a&amp;b&lt;c&gt;&quot;d&apos;&#233;&#x41;.bin', 'http://h/f?a=1&amp;b=2'),
    'm.meta4',
  );
  expect(f.name).toBe(`a&b<c>"d'éA.bin`);
  expect(f.urls[0].url).toBe('http://h/f?a=1&b=2');
  const quoted = `<?xml version="1.0"?><!-- <!DOCTYPE x> &nope; --><metalink xmlns="${ns}"><file name="f.bin"><description><![CDATA[<!DOCTYPE y> &lol;]]></description><url>http://h/f</url></file></metalink>`;
  expect(parseMetalink(quoted, 'm.meta4').map((x) => x.name)).toEqual(['f.bin']);
});
