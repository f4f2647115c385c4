// Compaction helper for load_balance and generate_dispatch: appends (through an atomic counter)
// the id of every PENDING chunk whose assigned edge e is not NO_EDGE and has edge_ok[e] = 1.
// The host sorts the ids into scheduling order and runs the order-dependent part on them.
struct Params { count: u32, base: u32, edges: u32, _pad: u32 }
@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> status: array<u32>;
@group(0) @binding(2) var<storage, read> assigned: array<u32>;
@group(0) @binding(3) var<storage, read> edge_ok: array<u32>;
@group(0) @binding(4) var<storage, read_write> counter: array<atomic<u32>>;
@group(0) @binding(5) var<storage, read_write> out_ids: array<u32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let c = gid.x;
  if (c >= P.count) { return; }
  if (u8_at(status[c >> 2u], c) != S_PENDING) { return; }
  let e = u16_at(assigned[c >> 1u], c);
  if (e == NO_EDGE) { return; }
  if (e >= P.edges) { return; }
  if (edge_ok[e] != 1u) { return; }
  let slot = atomicAdd(&counter[0], 1u);
  out_ids[slot] = P.base + c;
}
