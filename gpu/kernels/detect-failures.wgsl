// detect_failures: an IN_FLIGHT chunk whose edge is unavailable (EDGE_DOWN = 2) or whose deadline
// has passed (TIMEOUT = 1) is appended to the compacted output through an atomic counter. The
// order of the output is the GPU's; the host sorts it by chunk id to match the CPU reference.
struct Params { count: u32, now: u32, base: u32, edges: u32 }
@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> status: array<u32>;
@group(0) @binding(2) var<storage, read> assigned: array<u32>;
@group(0) @binding(3) var<storage, read> deadline: array<u32>;
@group(0) @binding(4) var<storage, read> available: array<u32>;
@group(0) @binding(5) var<storage, read_write> counter: array<atomic<u32>>;
@group(0) @binding(6) var<storage, read_write> out_ids: array<u32>;
@group(0) @binding(7) var<storage, read_write> out_causes: array<u32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let c = gid.x;
  if (c >= P.count) { return; }
  if (u8_at(status[c >> 2u], c) != S_IN_FLIGHT) { return; }
  let e = u16_at(assigned[c >> 1u], c);
  var cause = 0u;
  if (e == NO_EDGE || e >= P.edges) { cause = 2u; }
  else if (available[e] != 1u) { cause = 2u; }
  else if (P.now > deadline[c]) { cause = 1u; }
  if (cause == 0u) { return; }
  let slot = atomicAdd(&counter[0], 1u);
  out_ids[slot] = P.base + c;
  out_causes[slot] = cause;
}
