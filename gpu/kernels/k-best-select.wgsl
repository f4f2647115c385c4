// K-best selection by rank, shared by k-best.wgsl and failover-assign.wgsl. The including kernel
// declares `cand` (bitsets, P.words u32 per row) and `rank` (u32 per edge, INF_RANK past the last
// edge, ranks unique). Selecting the j-th best as "lowest rank ≥ lo" K times keeps no private
// array at all: no dynamic indexing into function-scope arrays, which llvmpipe handles poorly, and
// no ties, so the result is the CPU reference's bit for bit.
fn next_rank(base: u32, words: u32, lo: u32) -> u32 {
  var best = INF_RANK;
  for (var w = 0u; w < words; w++) {
    var bits = cand[base + w];
    loop {
      if (bits == 0u) { break; }
      let r = rank[w * 32u + countTrailingZeros(bits)];
      bits = bits & (bits - 1u);
      if (r >= lo && r < best) { best = r; }
    }
  }
  return best;
}

fn row_empty(base: u32, words: u32) -> bool {
  for (var w = 0u; w < words; w++) { if (cand[base + w] != 0u) { return false; } }
  return true;
}
