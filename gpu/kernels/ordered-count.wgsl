// Ordered compaction, pass 1: the number of flagged positions in each block of 256.
@group(0) @binding(5) var<storage, read_write> block_sums: array<u32>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let base = P.first + wid.x * BLOCK + li * 4u;
  let v = flag(base) + flag(base + 1u) + flag(base + 2u) + flag(base + 3u);
  let s = workgroup_inclusive(li, v);
  if (li == 63u && wid.x < P.blocks) { block_sums[wid.x] = s; }
}
