import { Writable } from 'node:stream';
import { createLogger } from '../../common/logger.js';
import { duplicateKeys } from '../helpers/json-keys.js';

// Every log line holds each key once: pino writes a child's bindings after its parent's, and a line's fields after
// both, without looking for keys already there (serve wrote "component":"dashboard" twice, and
// "coordinatorId":"default" twice).

function capture(): { lines: string[]; destination: Writable } {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(
        ...chunk
          .toString()
          .split('\n')
          .filter((l) => l.length > 0),
      );
      done();
    },
  });
  return { lines, destination };
}

describe('logger: each key once per line', () => {
  test('a child binding a key its parent has (same value or another) writes it once, the child’s value', async () => {
    const { lines, destination } = capture();
    const root = createLogger({ level: 'info', destination });
    const bridge = root.child({ component: 'coordinator-bridge', coordinatorId: 'default' });
    bridge.child({ component: 'peer-directory', coordinatorId: 'default' }).info('one');
    bridge.child({ component: 'bridge-inner' }).child({ peer: 'p1' }).info('two');
    root.child({ component: 'dashboard' }).child({ component: 'dashboard' }).info('three');
    await new Promise((r) => setImmediate(r));
    expect(lines).toHaveLength(3);
    for (const l of lines) expect(duplicateKeys(l)).toEqual([]);
    const [one, two, three] = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(one).toMatchObject({
      name: 'portal',
      component: 'peer-directory',
      coordinatorId: 'default',
      msg: 'one',
    });
    expect(two).toMatchObject({
      component: 'bridge-inner',
      coordinatorId: 'default',
      peer: 'p1',
      msg: 'two',
    });
    expect(three).toMatchObject({ component: 'dashboard', msg: 'three' });
  });

  test('a line’s field equal to a binding is written once; one that differs replaces it on that line only', async () => {
    const { lines, destination } = capture();
    const log = createLogger({ level: 'info', destination }).child({
      component: 'c',
      coordinatorId: 'default',
    });
    log.info({ coordinatorId: 'default', n: 1 }, 'same');
    log.info({ coordinatorId: 'other', n: 2 }, 'differs');
    log.info({ name: 'mine' }, 'renamed');
    log.info('after');
    await new Promise((r) => setImmediate(r));
    for (const l of lines) expect(duplicateKeys(l)).toEqual([]);
    const parsed = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(parsed[0]).toMatchObject({ coordinatorId: 'default', n: 1 });
    expect(parsed[1]).toMatchObject({ coordinatorId: 'other', n: 2, component: 'c' });
    expect(parsed[2]).toMatchObject({ name: 'mine', component: 'c' });
    expect(parsed[3]).toMatchObject({ coordinatorId: 'default', name: 'portal', msg: 'after' });
  });

  test('the duplicate-key check sees duplicates at any depth', () => {
    expect(duplicateKeys('{"a":1,"b":{"c":2,"c":3},"a":"x,\\"a\\":"}')).toEqual(['/b/c', '/a']);
    expect(duplicateKeys('{"a":[{"b":1},{"b":2}],"c":"}"}')).toEqual([]);
  });
});

describe('logger: keep', () => {
  test('keep sees each line as pino wrote it (parsed), in both formats, and drops what it refuses', async () => {
    for (const format of ['json', 'text'] as const) {
      const { lines, destination } = capture();
      const seen: Record<string, unknown>[] = [];
      const log = createLogger({
        level: 'info',
        destination,
        format,
        keep: (r) => {
          seen.push(r);
          return r.msg !== 'drop me';
        },
      });
      log.warn({ n: 1 }, 'keep me');
      log.warn({ n: 2 }, 'drop me');
      log.debug('below the level');
      await new Promise((r) => setImmediate(r));
      expect(seen.map((r) => [r.msg, r.n])).toEqual([
        ['keep me', 1],
        ['drop me', 2],
      ]);
      expect(lines).toHaveLength(1);
      expect(lines[0]).toContain('keep me');
      if (format === 'text') expect(lines[0]).toBe('portal: warning: keep me (n=1)');
    }
  });
});
