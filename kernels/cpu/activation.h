// GELU (tanh approximation, GPT-2) over contiguous float arrays, forward and backward, each
// compiled for AVX-512, AVX2 and the portable baseline (chosen at load time).
//
//   y  = ½·x·(1 + tanh(u)),  u = c·(x + a·x³),  c = √(2/π), a = 0.044715
//   dx = g·(½·(1 + tanh u) + ½·x·(1 − tanh² u)·c·(1 + 3a·x²))
// with tanh_fast (fast_math.h). Memory traffic per element: forward 8 bytes, backward 12; the
// ~25 flops per element (one division) make the portable build's 4-wide SSE2 loops compute
// bound (GELU forward + backward were 8.6% of a GPT micro training step in perf), so the
// loops are cloned with GCC's target_clones: the same source, wider vectors. activation.cpp is
// compiled with -ffp-contract=off (CMakeLists.txt), so no clone fuses a·b + c into an FMA and
// every clone gives bitwise the same results as the portable code. Reference: the scalar formula in
// engine/ops_elementwise.cpp (gelu, used for float64 and strided inputs; tests/engine check the two
// agree bitwise).
#pragma once

#include <cstdint>

namespace rlft::kernels {

void gelu_forward_f32(int64_t n, const float* x, float* y);
void gelu_backward_f32(int64_t n, const float* g, const float* x, float* dx);

// tanh the same way: y = tanh_fast(x), and from the saved output dx = g·(1 − y²) in one pass
// (the engine's reference is map_unary_float's tanh_fast and 1 − y·y followed by mul: bitwise
// the same, tests/engine). Traffic per element: forward 8 bytes, backward 12. The MLP
// policies' activation: ~12% of a PPO CartPole run on the portable 4-wide loop.
void tanh_forward_f32(int64_t n, const float* x, float* y);
void tanh_backward_f32(int64_t n, const float* g, const float* y, float* dx);

}  // namespace rlft::kernels
