import { checkArg } from '../../common/errors.js';

/** A rendered tile: its rectangle and one byte per pixel, row-major. */
export interface RenderedTile {
  x: number;
  y: number;
  width: number;
  height: number;
  pixels: Uint8Array;
}

/**
 * Merges tiles into one `width × height` 8-bit image. Returns the image and how many pixels were
 * covered (a missing tile leaves zeros: graceful degradation). Throws PORTAL_INVALID_ARGUMENT when a
 * tile lies outside the image, has the wrong pixel count, or overlaps another.
 */
export function mergeTiles(
  width: number,
  height: number,
  tiles: readonly RenderedTile[],
): { image: Uint8Array; covered: number } {
  checkArg(
    Number.isInteger(width) && width > 0 && Number.isInteger(height) && height > 0,
    'width/height',
    'positive integers',
  );
  const image = new Uint8Array(width * height);
  const seen = new Uint8Array(width * height);
  let covered = 0;
  for (const t of tiles) {
    checkArg(
      t.x >= 0 &&
        t.y >= 0 &&
        t.width >= 0 &&
        t.height >= 0 &&
        t.x + t.width <= width &&
        t.y + t.height <= height,
      'tile',
      `a rectangle inside ${width}×${height}, got ${t.x},${t.y} ${t.width}×${t.height}`,
    );
    checkArg(t.pixels.length === t.width * t.height, 'tile.pixels', `${t.width * t.height} bytes`);
    for (let y = 0; y < t.height; y++) {
      const row = (t.y + y) * width + t.x;
      for (let x = 0; x < t.width; x++) {
        checkArg(seen[row + x] === 0, 'tiles', `non-overlapping tiles (pixel ${t.x + x},${t.y + y} twice)`);
        seen[row + x] = 1;
      }
      image.set(t.pixels.subarray(y * t.width, (y + 1) * t.width), row);
      covered += t.width;
    }
  }
  return { image, covered };
}
