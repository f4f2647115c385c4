// Ordered compaction, shared part (prepended to ordered-count.wgsl and ordered-scatter.wgsl).
// Positions are scheduling-order positions: chunk order[i] when use_order = 1, else chunk i. The
// kernels cover positions [first, end) only (end = P.n); a position is flagged when its chunk is PENDING, its assigned edge e is not NO_EDGE
// and edge_ok[e] = 1 — exactly the chunks load_balance / generate_dispatch act on. Each workgroup
// owns BLOCK = 256 consecutive positions, 4 per thread.
struct Params { n: u32, first: u32, use_order: u32, edges: u32, max_out: u32, blocks: u32, _p0: u32, _p1: u32 }
@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> status: array<u32>;
@group(0) @binding(2) var<storage, read> assigned: array<u32>;
@group(0) @binding(3) var<storage, read> order: array<u32>;
@group(0) @binding(4) var<storage, read> edge_ok: array<u32>;

const BLOCK: u32 = 256u;
var<workgroup> part: array<u32, 64>;

fn chunk_at(i: u32) -> u32 {
  if (P.use_order != 0u) { return order[i]; }
  return i;
}

fn flag(i: u32) -> u32 {
  if (i >= P.n) { return 0u; }
  let c = chunk_at(i);
  if (u8_at(status[c >> 2u], c) != S_PENDING) { return 0u; }
  let e = u16_at(assigned[c >> 1u], c);
  if (e == NO_EDGE || e >= P.edges) { return 0u; }
  if (edge_ok[e] != 1u) { return 0u; }
  return 1u;
}

// Inclusive scan of `v` over the 64 threads of the workgroup (Hillis–Steele); every thread must call it.
fn workgroup_inclusive(li: u32, v: u32) -> u32 {
  part[li] = v;
  workgroupBarrier();
  for (var off = 1u; off < 64u; off = off * 2u) {
    var add = 0u;
    if (li >= off) { add = part[li - off]; }
    workgroupBarrier();
    part[li] = part[li] + add;
    workgroupBarrier();
  }
  return part[li];
}
