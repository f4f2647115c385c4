// Ordered compaction, pass 2 (one workgroup): turns the per-block counts into exclusive prefix
// sums in place and writes the total number of flagged positions to out[0]. Each thread sums a
// contiguous run of blocks, the 64 run totals are scanned in workgroup memory, then each thread
// rewrites its run.
struct Params { n: u32, first: u32, use_order: u32, edges: u32, max_out: u32, blocks: u32, _p0: u32, _p1: u32 }
@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read_write> block_sums: array<u32>;
@group(0) @binding(2) var<storage, read_write> out: array<u32>;

var<workgroup> part: array<u32, 64>;

@compute @workgroup_size(64)
fn main(@builtin(local_invocation_index) li: u32) {
  let per = (P.blocks + 63u) / 64u;
  let lo = min(li * per, P.blocks);
  let hi = min(lo + per, P.blocks);
  var s = 0u;
  for (var i = lo; i < hi; i++) { s = s + block_sums[i]; }
  part[li] = s;
  workgroupBarrier();
  for (var off = 1u; off < 64u; off = off * 2u) {
    var add = 0u;
    if (li >= off) { add = part[li - off]; }
    workgroupBarrier();
    part[li] = part[li] + add;
    workgroupBarrier();
  }
  var run = part[li] - s;
  for (var i = lo; i < hi; i++) { let v = block_sums[i]; block_sums[i] = run; run = run + v; }
  if (li == 63u) { out[0] = part[63]; }
}
