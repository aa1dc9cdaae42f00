// Layer normalisation over the last dimension of contiguous [N, C] rows.
//
// y = (x − μ)·rstd·w + b with μ, σ² the row mean and (population) variance and
// rstd = 1/√(σ² + eps). Forward saves μ and rstd per row. Backward, with x̂ = (x − μ)·rstd
// and ĝ = g·w: dx = rstd·(ĝ − mean(ĝ) − x̂·mean(ĝ·x̂)), dw = Σ_rows g·x̂, db = Σ_rows g.
// Traffic: forward reads x twice and writes y; backward reads x and g twice (rows for dx, then
// columns for dw, db). Reference: the composition of mean/var/mul in tests (gradient check in
// double); tests/kernels/test_layer_norm.cpp keeps the one-thread backward loop (version 1).
#pragma once

#include <cstdint>

namespace rlft::kernels {

// Rows split between threads above 2^15 elements; the row loops cloned for AVX-512/AVX2 in
// layer_norm.cpp (each row computed the same way whatever the split or clone).
void layer_norm_forward(int64_t N, int64_t C, const float* x, const float* w, const float* b,
                        double eps, float* y, double* mean, double* rstd);
void layer_norm_forward(int64_t N, int64_t C, const double* x, const double* w, const double* b,
                        double eps, double* y, double* mean, double* rstd);

// dx may be null; dw/db (length C) are overwritten when non-null. In layer_norm.cpp: rows of
// dx and columns of dw/db split between threads (each column still sums its rows in order, so
// results do not depend on the thread count), loops cloned for AVX-512/AVX2.
void layer_norm_backward(int64_t N, int64_t C, const float* x, const float* w, const double* mean,
                         const double* rstd, const float* g, float* dx, float* dw, float* db);
void layer_norm_backward(int64_t N, int64_t C, const double* x, const double* w, const double* mean,
                         const double* rstd, const double* g, double* dx, double* dw, double* db);

}  // namespace rlft::kernels
