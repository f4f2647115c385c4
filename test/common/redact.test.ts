import {
  escapeControl,
  isRedactedUrl,
  redactDeep,
  redactText,
  redactUrl,
  REDACTED,
} from '../../common/redact.js';
import { createLogger } from '../../common/logger.js';
import { PortalError } from '../../common/errors.js';
import { Writable } from 'node:stream';

describe('redaction of secrets in URLs and text', () => {
  test('redactUrl removes userinfo and every query value but a few harmless ones, keeping the rest as written', () => {
    expect(
      redactUrl(
        'https://alice:s3cret@bucket.s3.amazonaws.com/obj?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIA%2F2026&X-Amz-Signature=abcdef&token=t0k&part=3#frag',
      ),
    ).toBe(
      `https://${REDACTED}@bucket.s3.amazonaws.com/obj?X-Amz-Algorithm=${REDACTED}&X-Amz-Credential=${REDACTED}&X-Amz-Signature=${REDACTED}&token=${REDACTED}&part=3#frag`,
    );
    expect(REDACTED).toBe('***');
    expect(redactUrl('http://127.0.0.1:8080/file?sig=zz&name=a.iso&flag')).toBe(
      `http://127.0.0.1:8080/file?sig=${REDACTED}&name=a.iso&flag`,
    );
    expect(redactUrl('http://127.0.0.1:8080/file')).toBe('http://127.0.0.1:8080/file');
    expect(redactUrl('http://user@host/x?access_token=a&Signature=b&Key-Pair-Id=c')).toBe(
      `http://${REDACTED}@host/x?access_token=${REDACTED}&Signature=${REDACTED}&Key-Pair-Id=${REDACTED}`,
    );
  });

  test('redactText finds URLs in prose and bare token= pairs', () => {
    const t = redactText(
      'edge http://bob:pw@10.0.0.1:9/file?X-Amz-Signature=s1 failed; retry with token=abc, size=3',
    );
    expect(t).not.toMatch(/pw|s1|abc/);
    expect(t).toContain('size=3');
    expect(t).toContain('10.0.0.1:9/file');
  });

  test('redactText leaves the prose punctuation after a URL outside it: a masked last value does not swallow `: `', () => {
    expect(redactText('http://h:1/to?u=file:///etc/passwd: redirect to a file: URL')).toBe(
      'http://h:1/to?u=***: redirect to a file: URL',
    );
    expect(redactText('see (https://h/x?sig=abc). Then https://u:p@h/y, and http://h/z?token=t!')).toBe(
      'see (https://h/x?sig=***). Then https://***@h/y, and http://h/z?token=***!',
    );
    // the masked value is whole: only punctuation at the very end is left out
    expect(redactText('http://h/x?token=a.b:c,d.')).toBe('http://h/x?token=***.');
  });

  test('redactDeep redacts strings in nested objects and errors without touching other values', () => {
    const err = new PortalError('PORTAL_EDGE_HTTP', 'edge http://u:p@h/x?sig=1 answered 500', {
      cause: new Error('GET http://u:p@h/x?sig=1'),
    });
    const out = redactDeep({ n: 1, list: ['http://u:p@h/?token=2'], err, buf: Buffer.from('x') });
    expect(out.n).toBe(1);
    expect(out.list[0]).toBe(`http://${REDACTED}@h/?token=${REDACTED}`);
    expect(out.err.message).not.toMatch(/u:p|sig=1/);
    expect((out.err as unknown as { code: string }).code).toBe('PORTAL_EDGE_HTTP');
    expect(String((out.err.cause as Error).message)).not.toMatch(/u:p/);
    const plain = { a: 'no secrets here', b: [1, 2] };
    expect(redactDeep(plain)).toBe(plain);
  });

  test('the process logger writes no URL credentials or signatures, in messages, fields or errors', () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, cb) {
        lines.push(chunk.toString());
        cb();
      },
    });
    const log = createLogger({ level: 'debug', destination: sink });
    log.warn(
      { edgeUrl: 'http://alice:pw1@h:1/f?X-Amz-Signature=sig1' },
      'fetch of http://alice:pw1@h:1/f failed',
    );
    log.error({ err: new Error('GET http://h/f?token=tok1 failed') }, 'oops');
    const text = lines.join('');
    expect(lines.length).toBe(2);
    for (const secret of ['pw1', 'sig1', 'tok1']) expect(text).not.toContain(secret);
    expect(text).toContain('h:1/f');
  });

  test('escapeControl shows terminal escapes and NUL as \\xNN', () => {
    expect(escapeControl('a\u001b[31mred\u0000\nb')).toBe('a\\x1b[31mred\\x00\\x0ab');
    expect(escapeControl('plain-name.bin')).toBe('plain-name.bin');
  });
});

// a redacted URL is never used for a request (it would send `***` as a password or a signature)
test('isRedactedUrl: true for what redactUrl masked, false for the URL with its credentials or none', () => {
  for (const u of ['http://carol:CarolPW@h/auth/f.bin', 'https://h/f?sig=abc&file=x', 'https://u@h/x'])
    expect([isRedactedUrl(u), isRedactedUrl(redactUrl(u))]).toEqual([false, true]);
  for (const u of ['http://h/f.bin?file=a', 'http://h/***', 'not a url', 'http://h/f?x='])
    expect(isRedactedUrl(redactUrl(u))).toBe(false);
});
