import { Writable } from 'node:stream';
import { formatLogLine, resolveLogFormat } from '../../common/log-format.js';
import { createLogger } from '../../common/logger.js';

function capture(): { text: () => string; destination: Writable } {
  let all = '';
  const destination = new Writable({
    write(chunk: Buffer, _enc, done) {
      all += chunk.toString();
      done();
    },
  });
  return { text: () => all, destination };
}
const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

describe('log format text: one readable line per record, nothing the record carries lost', () => {
  test('a warning: name, level word, message, then every field but pino plumbing as key=value', () => {
    const line = JSON.stringify({
      level: 40,
      time: 1,
      pid: 2,
      hostname: 'h',
      name: 'portal',
      actorId: 'a-1',
      failures: 6,
      ok: false,
      lastError: 'busy: HTTP 503; Retry-After 1 s',
      ranges: [1, 2],
      msg: 'source given up',
    });
    expect(formatLogLine(`${line}\n`)).toBe(
      'portal: warning: source given up (actorId=a-1 failures=6 ok=false lastError="busy: HTTP 503; Retry-After 1 s" ranges=[1,2])\n',
    );
  });

  test('err as "<type>: <message>" and its other properties; the stack only when asked; controls escaped', () => {
    const rec = {
      level: 50,
      name: 'portal',
      err: {
        type: 'Error',
        message: 'disk \u001b[31mfull',
        code: 'ENOSPC',
        stack: 'Error: x\n    at f (a.js:1)',
      },
      msg: 'write\nfailed',
    };
    expect(formatLogLine(JSON.stringify(rec))).toBe(
      'portal: error: write\n  failed (err="Error: disk \\u001b[31mfull" err.code=ENOSPC)\n',
    );
    expect(formatLogLine(JSON.stringify(rec), true)).toBe(
      'portal: error: write\n  failed (err="Error: disk \\u001b[31mfull" err.code=ENOSPC)\n    Error: x\n    at f (a.js:1)\n',
    );
    expect(formatLogLine(JSON.stringify({ level: 30, msg: 'bare' }))).toBe('portal: info: bare\n');
    expect(formatLogLine('not json')).toBe('not json\n');
  });

  test('createLogger format text: redacted like JSON (URL userinfo, signed parameters), at the level asked', async () => {
    const { text, destination } = capture();
    const log = createLogger({ level: 'warn', destination, format: 'text' });
    log.info('not shown');
    log.warn(
      { url: 'https://user:pw@h.example/f?X-Amz-Signature=abc&a=1' },
      'retry of https://u:secret@h.example/g',
    );
    await tick();
    expect(text()).toBe(
      'portal: warning: retry of https://***@h.example/g (url="https://***@h.example/f?X-Amz-Signature=***&a=***")\n',
    );
    expect(text()).not.toMatch(/pw|secret|abc/);
  });

  test('--log-format values: auto takes the command’s own; text and json as asked; anything else a config error', () => {
    expect(resolveLogFormat('auto', 'text')).toBe('text');
    expect(resolveLogFormat(undefined, 'json')).toBe('json');
    expect(resolveLogFormat('JSON', 'text')).toBe('json');
    expect(resolveLogFormat('text', 'json')).toBe('text');
    expect(() => resolveLogFormat('yaml', 'text')).toThrow(
      /--log-format "yaml": expected auto, text or json/,
    );
  });
});
