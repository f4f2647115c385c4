// Shared by every Portal kernel (prepended by gpu/programs.ts).
const INF_RANK: u32 = 0x7fffffffu;
const NO_EDGE: u32 = 0xffffu;
const S_PENDING: u32 = 0u;
const S_IN_FLIGHT: u32 = 1u;
const S_COMPLETE: u32 = 2u;
const S_FAILED: u32 = 3u;
const S_FAILED_PERMANENT: u32 = 4u;

// Byte `i` of a u8 array stored as packed little-endian u32 words.
fn u8_at(word: u32, i: u32) -> u32 { return (word >> ((i & 3u) * 8u)) & 0xffu; }
// Element `i` of a u16 array stored as packed little-endian u32 words.
fn u16_at(word: u32, i: u32) -> u32 { return (word >> ((i & 1u) * 16u)) & 0xffffu; }
