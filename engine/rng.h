// Counter-based random numbers: Philox4x32-10 (Salmon et al., "Parallel random numbers: as
// easy as 1, 2, 3", SC'11). A draw is a pure function of (seed, counter), so the CPU and a
// CUDA kernel can produce the same stream: element i of a tensor filled at generator offset
// o uses block (o + i / 4), lane i % 4.
#pragma once

#include <cmath>
#include <cstdint>

// The block function is also compiled for CUDA kernels (kernels/cuda/elementwise.cu): one
// definition, so the two devices cannot drift apart.
#if defined(__CUDACC__)
#define RLFT_HOST_DEVICE __host__ __device__
#else
#define RLFT_HOST_DEVICE
#endif

namespace rlft {

struct Philox4x32 {
  static constexpr uint32_t kMul0 = 0xD2511F53u, kMul1 = 0xCD9E8D57u;
  static constexpr uint32_t kKey0 = 0x9E3779B9u, kKey1 = 0xBB67AE85u;

  struct Block {
    uint32_t v[4];
  };

  // Ten rounds over the 128-bit counter (ctr_lo, ctr_hi) with the 64-bit key `seed`.
  RLFT_HOST_DEVICE static inline Block generate(uint64_t seed, uint64_t ctr_lo, uint64_t ctr_hi = 0) {
    uint32_t c0 = uint32_t(ctr_lo), c1 = uint32_t(ctr_lo >> 32);
    uint32_t c2 = uint32_t(ctr_hi), c3 = uint32_t(ctr_hi >> 32);
    uint32_t k0 = uint32_t(seed), k1 = uint32_t(seed >> 32);
    for (int round = 0; round < 10; ++round) {
      const uint64_t p0 = uint64_t(kMul0) * c0, p1 = uint64_t(kMul1) * c2;
      const uint32_t n0 = uint32_t(p1 >> 32) ^ c1 ^ k0, n2 = uint32_t(p0 >> 32) ^ c3 ^ k1;
      c0 = n0;
      c1 = uint32_t(p1);
      c2 = n2;
      c3 = uint32_t(p0);
      k0 += kKey0;
      k1 += kKey1;
    }
    return Block{{c0, c1, c2, c3}};
  }

  // 32 random bits -> float uniform in [0, 1) with 24 bits of mantissa.
  RLFT_HOST_DEVICE static inline float to_unit_float(uint32_t x) { return float(x >> 8) * (1.0f / 16777216.0f); }
  // 64 random bits -> double uniform in [0, 1) with 53 bits.
  RLFT_HOST_DEVICE static inline double to_unit_double(uint32_t hi, uint32_t lo) {
    return double(((uint64_t(hi) << 32) | lo) >> 11) * (1.0 / 9007199254740992.0);
  }
};

// A seeded stream: each call advances `offset` (in 128-bit blocks) past what it consumed, so
// draws never overlap. Cheap to copy; copy it to replay a stream.
class Generator {
 public:
  explicit Generator(uint64_t seed = 0) : seed_(seed) {}
  uint64_t seed() const { return seed_; }
  uint64_t offset() const { return offset_; }
  void set_state(uint64_t seed, uint64_t offset) {
    seed_ = seed;
    offset_ = offset;
    lane_ = 4;  // drop the cached block: the next draw comes from (seed, offset)
  }
  // Drops what is left of the current block, so the next draw starts a fresh one and the
  // stream's whole state is (seed, offset): a loop that aligns at the start of every step can
  // checkpoint its streams as two numbers and resume drawing exactly the same values.
  void align_to_block() { lane_ = 4; }
  // Reserves `blocks` Philox blocks and returns the first counter of the reservation.
  uint64_t reserve(uint64_t blocks) {
    uint64_t first = offset_;
    offset_ += blocks;
    return first;
  }

  uint32_t next_u32() {
    if (lane_ == 4) { block_ = Philox4x32::generate(seed_, reserve(1)); lane_ = 0; }
    return block_.v[lane_++];
  }
  uint64_t next_u64() { uint64_t hi = next_u32(); return (hi << 32) | next_u32(); }
  // Uniform double in [0, 1).
  double uniform() { uint32_t hi = next_u32(); return Philox4x32::to_unit_double(hi, next_u32()); }
  double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }
  // Standard normal (Box-Muller on two uniforms).
  double normal() {
    double u1 = uniform(), u2 = uniform();
    if (u1 < 1e-300) u1 = 1e-300;
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }
  // Uniform integer in [0, n), n > 0 (rejection-free multiply-shift; bias < 2^-32 * n).
  uint64_t below(uint64_t n) { return uint64_t((unsigned __int128)next_u64() * n >> 64); }

 private:
  uint64_t seed_;
  uint64_t offset_ = 0;
  Philox4x32::Block block_{};
  int lane_ = 4;
};

}  // namespace rlft
