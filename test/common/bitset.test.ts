import { bitsetBytes, clearBit, hasBit, setBit } from '../../common/bitset.js';
import { decodeHaveBitmap, encodeHaveBitmap } from '../../transfer/have-bitmap.js';

describe('bitset', () => {
  it('puts bit i in bit i & 7 of byte i >> 3, least significant first', () => {
    const b = new Uint8Array(bitsetBytes(17));
    expect(b.length).toBe(3);
    setBit(b, 0);
    setBit(b, 9);
    setBit(b, 16);
    expect([...b]).toEqual([0b0000_0001, 0b0000_0010, 0b0000_0001]);
    expect(hasBit(b, 9)).toBe(true);
    expect(hasBit(b, 8)).toBe(false);
    clearBit(b, 9);
    expect([...b]).toEqual([1, 0, 1]);
  });

  it('answers false past the end', () => {
    expect(hasBit(new Uint8Array(1), 100)).toBe(false);
  });

  it('is the layout of the have-bitmap codec', () => {
    const b = new Uint8Array(bitsetBytes(20));
    for (const i of [1, 7, 8, 19]) setBit(b, i);
    expect(encodeHaveBitmap([1, 7, 8, 19], 20)).toBe(Buffer.from(b).toString('base64'));
    expect(decodeHaveBitmap(Buffer.from(b).toString('base64'), 20)).toEqual([1, 7, 8, 19]);
  });
});
