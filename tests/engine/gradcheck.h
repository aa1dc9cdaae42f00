// Gradient checking against central finite differences, in float64.
//
// check_gradients(fn, inputs) compares, for each input that requires grad, the analytic
// gradient of L = Σ w ⊙ fn(inputs) (w fixed random weights, so every output element
// matters) with (L(x + h·e_i) − L(x − h·e_i)) / 2h for every element i.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "engine/ops.h"

namespace rlft::testing {

using OpFn = std::function<Tensor(const std::vector<Tensor>&)>;

inline double weighted_sum(const Tensor& out, const Tensor& w) {
  NoGradGuard ng;
  return sum(mul(out.to(DType::f64), w)).item();
}

// Returns an empty string when every gradient matches, else a description of the worst miss.
inline std::string check_gradients(const OpFn& fn, const std::vector<Tensor>& leaves,
                                   const std::function<std::vector<Tensor>(const std::vector<Tensor>&)>& prepare,
                                   double h = 1e-6, double atol = 1e-6, double rtol = 1e-5) {
  Generator gen(1234);
  Tensor out = fn(prepare(leaves));
  const Tensor w = randn(out.shape(), &gen, DType::f64);
  for (const Tensor& l : leaves) l.impl()->grad.reset();
  sum(mul(out, w.to(out.dtype()))).backward();
  std::string worst;
  double worst_err = 0;
  for (size_t k = 0; k < leaves.size(); ++k) {
    const Tensor& x = leaves[k];
    if (!x.requires_grad()) continue;
    if (!x.grad().defined()) return "input " + std::to_string(k) + " received no gradient";
    if (x.grad().shape() != x.shape()) return "input " + std::to_string(k) + ": gradient shape mismatch";
    const std::vector<double> analytic = x.grad().to_vector();
    double* p = x.data<double>();  // leaves are contiguous float64
    for (int64_t i = 0; i < x.numel(); ++i) {
      const double orig = p[i];
      double lp, lm;
      {
        NoGradGuard ng;
        p[i] = orig + h;
        lp = weighted_sum(fn(prepare(leaves)), w);
        p[i] = orig - h;
        lm = weighted_sum(fn(prepare(leaves)), w);
        p[i] = orig;
      }
      const double numeric = (lp - lm) / (2 * h);
      const double err = std::abs(numeric - analytic[i]);
      if (err > atol + rtol * std::abs(numeric) && err > worst_err) {
        worst_err = err;
        worst = "input " + std::to_string(k) + " element " + std::to_string(i) + ": analytic " +
                std::to_string(analytic[i]) + " vs numeric " + std::to_string(numeric);
      }
    }
  }
  return worst;
}

}  // namespace rlft::testing
