// Fused cost + K-best: the K lowest-ranked candidate edges of each chunk, best first, NO_EDGE
// padded. Costs depend on the edge only, so the host ranks edges once per tick and this kernel is
// integer-only. One invocation per chunk (or per entry of `list` when use_list = 1); chunk ids are
// relative to the partition bound as `cand`.
struct Params { count: u32, use_list: u32, k: u32, words: u32 }
@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> cand: array<u32>;
@group(0) @binding(2) var<storage, read> rank: array<u32>;
@group(0) @binding(3) var<storage, read> edge_of_rank: array<u32>;
@group(0) @binding(4) var<storage, read> list: array<u32>;
@group(0) @binding(5) var<storage, read_write> out_backups: array<u32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = gid.x;
  if (i >= P.count) { return; }
  var c = i;
  if (P.use_list != 0u) { c = list[i]; }
  let base = c * P.words;
  var lo = 0u;
  var done = false;
  for (var j = 0u; j < P.k; j++) {
    var e = NO_EDGE;
    if (!done) {
      let r = next_rank(base, P.words, lo);
      if (r == INF_RANK) { done = true; } else { e = edge_of_rank[r]; lo = r + 1u; }
    }
    out_backups[i * P.k + j] = e;
  }
}
