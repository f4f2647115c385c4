import { durationMs } from '../../cli/commands/serve.js';

describe('durationMs (cli/commands/serve.ts): Go durations, as Dapr takes them', () => {
  test('every unit, µs included (its regular expression writes it \\u00b5s: the bundles are ASCII)', () => {
    expect(durationMs('1h30m', 'f')).toBe(5_400_000);
    expect(durationMs('1500ms', 'f')).toBe(1500);
    expect(durationMs('2s', 'f')).toBe(2000);
    expect(durationMs('1500µs', 'f')).toBe(1.5);
    expect(durationMs('1500us', 'f')).toBe(1.5);
    expect(durationMs('3000000ns', 'f')).toBe(3);
    expect(() => durationMs('5 parsecs', '--flag')).toThrow(/--flag: expected a Go duration/);
  });
});
