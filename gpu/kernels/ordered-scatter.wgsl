// Ordered compaction, pass 3: every flagged position whose global index (block prefix + index in
// the block) is below max_out is written to out[1 + index]. The result is the first max_out
// flagged positions in ascending order — deterministic, no atomics.
@group(0) @binding(5) var<storage, read> block_prefix: array<u32>;
@group(0) @binding(6) var<storage, read_write> out: array<u32>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let base = P.first + wid.x * BLOCK + li * 4u;
  let f0 = flag(base);
  let f1 = flag(base + 1u);
  let f2 = flag(base + 2u);
  let f3 = flag(base + 3u);
  let v = f0 + f1 + f2 + f3;
  let incl = workgroup_inclusive(li, v);
  if (wid.x >= P.blocks || v == 0u) { return; }
  var idx = block_prefix[wid.x] + incl - v;
  if (f0 == 1u) { if (idx < P.max_out) { out[1u + idx] = base; } idx = idx + 1u; }
  if (f1 == 1u) { if (idx < P.max_out) { out[1u + idx] = base + 1u; } idx = idx + 1u; }
  if (f2 == 1u) { if (idx < P.max_out) { out[1u + idx] = base + 2u; } idx = idx + 1u; }
  if (f3 == 1u) { if (idx < P.max_out) { out[1u + idx] = base + 3u; } }
}
