// failover_assign over a gathered list of failed chunks (item i: state = [status, failed edge,
// retries, 0], its K backups, its candidate row). Every item is independent, so one invocation per
// item computes exactly what the CPU reference's loop body does. out = [outcome, status, assigned,
// retries]. Outcomes: 0 not FAILED (untouched), 1 BACKUP, 2 RECOMPUTED, 3 PARKED, 4 PERMANENT;
// +8 when the K best were recomputed (the item's backups row is then the new one).
struct Params { count: u32, k: u32, words: u32, max_attempts: u32 }
@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> state: array<u32>;
@group(0) @binding(2) var<storage, read_write> backups: array<u32>;
@group(0) @binding(3) var<storage, read> cand: array<u32>;
@group(0) @binding(4) var<storage, read> rank: array<u32>;
@group(0) @binding(5) var<storage, read> edge_of_rank: array<u32>;
@group(0) @binding(6) var<storage, read_write> out_state: array<u32>;

fn emit(i: u32, outcome: u32, s: u32, a: u32, r: u32) {
  out_state[i * 4u] = outcome;
  out_state[i * 4u + 1u] = s;
  out_state[i * 4u + 2u] = a;
  out_state[i * 4u + 3u] = r;
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = gid.x;
  if (i >= P.count) { return; }
  let s = state[i * 4u];
  let bad = state[i * 4u + 1u];
  var r = state[i * 4u + 2u];
  if (s != S_FAILED) { emit(i, 0u, s, bad, r); return; }
  if (r < 255u) { r = r + 1u; }
  if (r >= P.max_attempts) { emit(i, 4u, S_FAILED_PERMANENT, NO_EDGE, r); return; }
  let base = i * P.words;
  for (var j = 0u; j < P.k; j++) {
    let b = backups[i * P.k + j];
    if (b == NO_EDGE || b == bad) { continue; }
    if (rank[b] == INF_RANK) { continue; }
    if (((cand[base + (b >> 5u)] >> (b & 31u)) & 1u) == 0u) { continue; }
    emit(i, 1u, S_PENDING, b, r);
    return;
  }
  // backups exhausted: recompute the K best from the current ranking
  var lo = 0u;
  var found = 0u;
  var done = false;
  for (var j = 0u; j < P.k; j++) {
    var e = NO_EDGE;
    if (!done) {
      let rr = next_rank(base, P.words, lo);
      if (rr == INF_RANK) { done = true; } else { e = edge_of_rank[rr]; lo = rr + 1u; found = found + 1u; }
    }
    backups[i * P.k + j] = e;
  }
  if (found > 0u) {
    var pick = backups[i * P.k];
    for (var j = 0u; j < found; j++) {
      let b = backups[i * P.k + j];
      if (b != bad) { pick = b; break; }
    }
    emit(i, 2u + 8u, S_PENDING, pick, r);
  } else if (row_empty(base, P.words)) {
    emit(i, 4u + 8u, S_FAILED_PERMANENT, NO_EDGE, r);
  } else {
    emit(i, 3u + 8u, S_PENDING, NO_EDGE, r);
  }
}
