// edge_telemetry: folds a batch of per-chunk samples into one aggregate slot per edge with u32
// atomics only (order-independent, hence bit-identical to the CPU reference). 64-bit sums are kept
// as two u32 halves: the low 16 bits and the high 16 bits of every value are summed separately,
// which cannot overflow for up to 65,536 samples per batch (the kernel's maxBatch).
// Input record (5 words): edge, ok, bytes, firstByteUs, transferUs.
// Output slot (12 words): edge, count, ok, fail, bytesLo, bytesHi, firstByteLo, firstByteHi,
// transferLo, transferHi, firstByteMinUs, firstByteMaxUs. Slot `edges` collects unknown edges.
struct Params { count: u32, edges: u32, pad0: u32, pad1: u32 }
@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> samples: array<u32>;
@group(0) @binding(2) var<storage, read_write> agg: array<atomic<u32>>;

fn add_split(at: u32, v: u32) {
  atomicAdd(&agg[at], v & 0xffffu);
  atomicAdd(&agg[at + 1u], v >> 16u);
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = gid.x;
  if (i >= P.count) { return; }
  let b = i * 5u;
  let e = min(samples[b], P.edges);
  let o = e * 12u;
  atomicAdd(&agg[o + 1u], 1u);
  if (samples[b + 1u] != 0u) {
    atomicAdd(&agg[o + 2u], 1u);
    add_split(o + 4u, samples[b + 2u]);
    let fb = samples[b + 3u];
    add_split(o + 6u, fb);
    add_split(o + 8u, samples[b + 4u]);
    atomicMin(&agg[o + 10u], fb);
    atomicMax(&agg[o + 11u], fb);
  } else {
    atomicAdd(&agg[o + 3u], 1u);
  }
}
