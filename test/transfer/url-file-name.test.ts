import { fileNameFromUrl } from '../../transfer/output-target.js';

describe('fileNameFromUrl: the output name a source URL gives', () => {
  test('percent-decoded, as wget and browsers name it; a segment that does not decode is kept as written', () => {
    expect(fileNameFromUrl('http://h/d/a%20b.bin', 'u', true)).toBe('a b.bin');
    expect(fileNameFromUrl('http://h/caf%C3%A9.bin?x=1', 'u', true)).toBe('café.bin');
    expect(fileNameFromUrl('http://h/100%.bin', 'u', true)).toBe('100%.bin');
    expect(fileNameFromUrl('http://h/', 'u', true)).toBe('download');
  });

  test('a name decoding to a separator, NUL or a control character is refused naming the URL; with --out the segment is kept as written', () => {
    for (const [seg, why] of [
      ['x%2Fy.bin', 'contains a path separator'],
      ['x%5Cy.bin', 'contains a path separator'],
      ['a%00b', 'contains a control character (NUL, ESC, newline…)'],
      ['a%0Ab', 'contains a control character (NUL, ESC, newline…)'],
    ]) {
      expect(() => fileNameFromUrl(`http://h/${seg}`, 'http://h/…', true)).toThrow(
        expect.objectContaining({
          code: 'PORTAL_CONFIG_INVALID',
          message: expect.stringContaining(`decoded from http://h/… ${why}; give --out FILE`),
        }),
      );
      expect(fileNameFromUrl(`http://h/${seg}`, 'u', false)).toBe(seg);
    }
  });
});
