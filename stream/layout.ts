/** Scalar types a record field may have: 4 bytes each, little-endian, as WGSL's u32 / i32 / f32. */
export type FieldType = 'u32' | 'i32' | 'f32';

/** One field of a record layout, in declaration order. */
export interface FieldSpec {
  name: string;
  type: FieldType;
}

/** A fixed record layout as declared (JSON-serializable: it travels in actor calls). */
export interface LayoutSpec {
  name: string;
  fields: FieldSpec[];
}

/** A record's values by field name. */
export type RecordValues = Record<string, number>;

/**
 * A fixed-layout record (the seed's `unmanaged` constraint): 4-byte scalar fields packed in order
 * with no padding, so a batch is one byte array that the CPU reference reads through typed views and
 * the GPU reads as `array<Struct>` (a WGSL struct of 4-byte scalars has the same packing).
 */
export interface RecordLayout {
  readonly name: string;
  readonly fields: readonly FieldSpec[];
  /** Bytes per record (4 × fields). */
  readonly recordBytes: number;
  /** 32-bit words per record. */
  readonly words: number;
  /** Word offset of `field`; throws PORTAL_STREAM_BAD_LAYOUT when the layout has no such field. */
  offsetOf(field: string): number;
  /** The WGSL struct declaration of this layout. */
  wgslStruct(): string;
  /** Packs records into bytes (missing fields are 0; u32/i32 wrap, f32 rounds). */
  encode(records: readonly RecordValues[]): Uint8Array;
  /** Unpacks every record of `bytes`; throws PORTAL_STREAM_BAD_RECORDS when it is not whole records. */
  decode(bytes: Uint8Array): RecordValues[];
  /** Number of whole records in `bytes`; throws PORTAL_STREAM_BAD_RECORDS when a record is cut. */
  count(bytes: Uint8Array): number;
  /** The declaration this layout was built from. */
  toJSON(): LayoutSpec;
}

const IDENT = /^[A-Za-z_][A-Za-z0-9_]*$/;
const TYPES: readonly FieldType[] = ['u32', 'i32', 'f32'];

/** Builds a layout; throws PortalError PORTAL_STREAM_BAD_LAYOUT naming the bad field. */
export function defineLayout(spec: LayoutSpec): RecordLayout {
  if (!spec || typeof spec !== 'object')
    throw new PortalError('PORTAL_STREAM_BAD_LAYOUT', 'layout: expected { name, fields }');
  if (typeof spec.name !== 'string' || !IDENT.test(spec.name))
    throw new PortalError(
      'PORTAL_STREAM_BAD_LAYOUT',
      `layout.name: expected an identifier, got ${JSON.stringify(spec.name)}`,
    );
  if (!Array.isArray(spec.fields) || spec.fields.length === 0 || spec.fields.length > 64)
    throw new PortalError('PORTAL_STREAM_BAD_LAYOUT', `layout ${spec.name}: expected 1 to 64 fields`);
  const seen = new Set<string>();
  const fields = spec.fields.map((f, i) => {
    if (!f || typeof f.name !== 'string' || !IDENT.test(f.name))
      throw new PortalError(
        'PORTAL_STREAM_BAD_LAYOUT',
        `layout ${spec.name}: fields[${i}].name is not an identifier`,
      );
    if (!TYPES.includes(f.type))
      throw new PortalError(
        'PORTAL_STREAM_BAD_LAYOUT',
        `layout ${spec.name}: fields[${i}].type must be u32, i32 or f32, got ${JSON.stringify(f.type)}`,
      );
    if (seen.has(f.name))
      throw new PortalError(
        'PORTAL_STREAM_BAD_LAYOUT',
        `layout ${spec.name}: field ${f.name} declared twice`,
      );
    seen.add(f.name);
    return { name: f.name, type: f.type };
  });
  const offsets = new Map(fields.map((f, i) => [f.name, i]));
  const words = fields.length;
  const recordBytes = words * 4;
  const count = (bytes: Uint8Array): number => {
    if (bytes.byteLength % recordBytes !== 0) {
      throw new PortalError(
        'PORTAL_STREAM_BAD_RECORDS',
        `${bytes.byteLength} bytes are not whole ${spec.name} records of ${recordBytes} bytes`,
      );
    }
    return bytes.byteLength / recordBytes;
  };
  return {
    name: spec.name,
    fields,
    recordBytes,
    words,
    count,
    offsetOf(field) {
      const o = offsets.get(field);
      if (o === undefined)
        throw new PortalError('PORTAL_STREAM_BAD_LAYOUT', `layout ${spec.name} has no field ${field}`);
      return o;
    },
    wgslStruct: () => `struct ${spec.name} {\n${fields.map((f) => `  ${f.name}: ${f.type},`).join('\n')}\n}`,
    encode(records) {
      const buf = new ArrayBuffer(records.length * recordBytes);
      const u = new Uint32Array(buf),
        i32 = new Int32Array(buf),
        f = new Float32Array(buf);
      for (let r = 0; r < records.length; r++) {
        const rec = records[r];
        for (let k = 0; k < words; k++) {
          const fd = fields[k];
          const v = rec[fd.name] ?? 0;
          const at = r * words + k;
          if (fd.type === 'u32') u[at] = v;
          else if (fd.type === 'i32') i32[at] = v;
          else f[at] = v;
        }
      }
      return new Uint8Array(buf);
    },
    decode(bytes) {
      const n = count(bytes);
      const copy = new Uint8Array(bytes); // a copy: a Node Buffer's slice() would be a view
      const u = new Uint32Array(copy.buffer, 0, n * words),
        i32 = new Int32Array(copy.buffer, 0, n * words),
        f = new Float32Array(copy.buffer, 0, n * words);
      const out: RecordValues[] = [];
      for (let r = 0; r < n; r++) {
        const rec: RecordValues = {};
        for (let k = 0; k < words; k++) {
          const at = r * words + k;
          const fd = fields[k];
          rec[fd.name] = fd.type === 'u32' ? u[at] : fd.type === 'i32' ? i32[at] : f[at];
        }
        out.push(rec);
      }
      return out;
    },
    toJSON: () => ({ name: spec.name, fields: fields.map((f) => ({ ...f })) }),
  };
}

/** A Uint32Array over `bytes` (copied only when `bytes` is not 4-byte aligned). */
export function wordsOf(bytes: Uint8Array): Uint32Array {
  if (bytes.byteOffset % 4 === 0)
    return new Uint32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength >>> 2);
  return new Uint32Array(new Uint8Array(bytes).buffer, 0, bytes.byteLength >>> 2);
}
import { PortalError } from '../common/errors.js';
