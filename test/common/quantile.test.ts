import { quantile, quantileSorted } from '../../common/quantile.js';
import { isPortalError } from '../../common/errors.js';

describe('quantile', () => {
  it('returns the observed sample nearest the definition-7 position', () => {
    const xs = [10, 1, 9, 2, 8, 3, 7, 4, 6, 5];
    expect(quantile(xs, 0)).toBe(1);
    expect(quantile(xs, 1)).toBe(10);
    // position 0.5·9 = 4.5 → index 5 → 6
    expect(quantile(xs, 0.5)).toBe(6);
    // position 0.99·9 = 8.91 → index 9 → 10
    expect(quantile(xs, 0.99)).toBe(10);
    // position 0.25·9 = 2.25 → index 2 → 3
    expect(quantile(xs, 0.25)).toBe(3);
  });

  it('sorts numerically, not as strings', () => {
    expect(quantile([100, 9, 20], 0)).toBe(9);
    expect(quantile([100, 9, 20], 0.5)).toBe(20);
  });

  it('answers the given empty value for no samples and refuses q outside [0, 1]', () => {
    expect(quantile([], 0.5)).toBeNaN();
    expect(quantileSorted([], 0.5, 0)).toBe(0);
    let err: unknown;
    try {
      quantile([1], 1.5);
    } catch (e) {
      err = e;
    }
    expect(isPortalError(err, 'PORTAL_INVALID_ARGUMENT')).toBe(true);
  });
});
