// Every differentiable op against central finite differences (float64), with contiguous,
// non-contiguous (transposed storage) and broadcast (expanded) inputs. Adding an op is one
// line in kCases. Sample ranges keep away from kinks (relu at 0, clamp bounds, abs at 0,
// ties of max/min) and from the domain edges of log/sqrt/pow.
#include <gtest/gtest.h>

#include "engine/ops.h"
#include "gradcheck.h"

namespace rlft {
namespace {

using testing::OpFn;
using V = const std::vector<Tensor>&;

enum Domain { kAny, kPositive, kAwayFromZero, kDistinct };

struct GradCase {
  std::string name;
  std::vector<Shape> shapes;
  OpFn fn;
  Domain domain = kAny;
};

Tensor idx(std::vector<int64_t> v, Shape s) { return Tensor::from_vector(v, s); }

const std::vector<GradCase>& cases() {
  static const std::vector<GradCase> k = {
      {"add", {{3, 4}, {4}}, [](V x) { return add(x[0], x[1]); }},
      {"sub", {{3, 1}, {1, 4}}, [](V x) { return sub(x[0], x[1]); }},
      {"mul", {{2, 3, 4}, {3, 1}}, [](V x) { return mul(x[0], x[1]); }},
      {"div", {{3, 4}, {3, 4}}, [](V x) { return div(x[0], x[1]); }, kAwayFromZero},
      {"minimum", {{3, 4}, {3, 4}}, [](V x) { return minimum(x[0], x[1]); }, kDistinct},
      {"maximum", {{3, 4}, {4}}, [](V x) { return maximum(x[0], x[1]); }, kDistinct},
      {"add_scalar", {{3, 4}}, [](V x) { return x[0] + 2.5; }},
      {"mul_scalar", {{3, 4}}, [](V x) { return x[0] * -1.5; }},
      {"rsub", {{3, 4}}, [](V x) { return 1.0 - x[0]; }},
      {"rdiv", {{3, 4}}, [](V x) { return 2.0 / x[0]; }, kAwayFromZero},
      {"neg", {{3, 4}}, [](V x) { return neg(x[0]); }},
      {"pow", {{3, 4}}, [](V x) { return pow(x[0], 3.0); }},
      {"pow_frac", {{3, 4}}, [](V x) { return pow(x[0], 1.5); }, kPositive},
      {"exp", {{3, 4}}, [](V x) { return exp(x[0]); }},
      {"log", {{3, 4}}, [](V x) { return log(x[0]); }, kPositive},
      {"sqrt", {{3, 4}}, [](V x) { return sqrt(x[0]); }, kPositive},
      {"abs", {{3, 4}}, [](V x) { return abs(x[0]); }, kAwayFromZero},
      {"tanh", {{3, 4}}, [](V x) { return tanh(x[0]); }},
      {"sigmoid", {{3, 4}}, [](V x) { return sigmoid(x[0]); }},
      {"relu", {{3, 4}}, [](V x) { return relu(x[0]); }, kAwayFromZero},
      {"gelu", {{3, 4}}, [](V x) { return gelu(x[0]); }},
      {"softplus", {{3, 4}}, [](V x) { return softplus(x[0]); }},
      {"clamp", {{3, 4}}, [](V x) { return clamp(x[0], -0.35, 0.4); }, kDistinct},
      {"where", {{3, 4}, {4}}, [](V x) { return where(gt(x[0], 0.0), x[0], x[1]); }, kAwayFromZero},
      {"sum_all", {{3, 4}}, [](V x) { return sum(x[0]); }},
      {"sum_dim", {{2, 3, 4}}, [](V x) { return sum(x[0], {1}); }},
      {"sum_dims_keep", {{2, 3, 4}}, [](V x) { return sum(x[0], {0, 2}, true); }},
      {"mean", {{2, 3, 4}}, [](V x) { return mean(x[0], {-1}); }},
      {"var", {{3, 5}}, [](V x) { return var(x[0], {1}); }},
      {"var_pop", {{3, 5}}, [](V x) { return var(x[0], {0}, 0, true); }},
      {"max_dim", {{3, 5}}, [](V x) { return max(x[0], 1); }, kDistinct},
      {"min_dim", {{3, 5}}, [](V x) { return min(x[0], 0, true); }, kDistinct},
      {"max_all", {{3, 5}}, [](V x) { return max(x[0]); }, kDistinct},
      {"logsumexp", {{3, 5}}, [](V x) { return logsumexp(x[0], 1); }},
      {"cumsum", {{3, 5}}, [](V x) { return cumsum(x[0], 1); }},
      {"cumsum_middle", {{2, 4, 3}}, [](V x) { return cumsum(x[0], -2); }},
      {"cumsum_twice", {{3, 4}}, [](V x) { return cumsum(cumsum(x[0], 0), 1); }},
      {"matmul", {{3, 4}, {4, 5}}, [](V x) { return matmul(x[0], x[1]); }},
      {"matmul_batched", {{2, 3, 4}, {4, 2}}, [](V x) { return matmul(x[0], x[1]); }},
      {"matmul_bcast", {{2, 1, 3, 4}, {3, 4, 2}}, [](V x) { return matmul(x[0], x[1]); }},
      {"matmul_vec", {{4}, {4, 3}}, [](V x) { return matmul(x[0], x[1]); }},
      {"linear", {{5, 4}, {3, 4}, {3}}, [](V x) { return linear(x[0], x[1], x[2]); }},
      {"linear_3d", {{2, 5, 4}, {3, 4}}, [](V x) { return linear(x[0], x[1]); }},
      {"softmax", {{3, 5}}, [](V x) { return softmax(x[0]); }},
      {"softmax_dim0", {{3, 5}}, [](V x) { return softmax(x[0], 0); }},
      {"log_softmax", {{3, 5}}, [](V x) { return log_softmax(x[0]); }},
      {"cross_entropy", {{4, 5}}, [](V x) { return cross_entropy(x[0], idx({1, 4, -100, 0}, {4})); }},
      {"cross_entropy_sum", {{3, 5}}, [](V x) { return cross_entropy(x[0], idx({2, 2, 0}, {3}), -100, "sum"); }},
      {"embedding", {{6, 3}}, [](V x) { return embedding(x[0], idx({1, 5, 1, 0}, {2, 2})); }},
      {"layer_norm", {{4, 6}, {6}, {6}}, [](V x) { return layer_norm(x[0], x[1], x[2]); }},
      {"layer_norm_plain", {{2, 3, 6}}, [](V x) { return layer_norm(x[0], Tensor(), Tensor()); }},
      {"concat", {{2, 3}, {2, 2}}, [](V x) { return concat({x[0], x[1]}, 1); }},
      {"stack", {{2, 3}, {2, 3}}, [](V x) { return stack({x[0], x[1]}, 1); }},
      {"gather", {{3, 4}}, [](V x) { return gather(x[0], 1, idx({0, 3, 3, 1, 2, 0}, {3, 2})); }},
      {"index_select", {{4, 3}}, [](V x) { return index_select(x[0], 0, idx({3, 0, 3}, {3})); }},
      // along an inner dim, fewer picks than the dim's size (each outer row strides by 4, not 3)
      {"index_select_dim1", {{2, 4, 3}}, [](V x) { return index_select(x[0], 1, idx({3, 0, 3}, {3})); }},
      {"masked_fill", {{3, 4}}, [](V x) { return masked_fill(x[0], gt(x[0], 0.2), -7.0); }, kDistinct},
      {"reshape", {{3, 4}}, [](V x) { return exp(x[0].reshape({2, 6})); }},
      {"permute", {{2, 3, 4}}, [](V x) { return x[0].permute({2, 0, 1}) * 2.0; }},
      {"narrow", {{4, 5}}, [](V x) { return x[0].narrow(1, 1, 3) * 3.0; }},
      {"select", {{4, 5}}, [](V x) { return x[0].select(0, -1) * 3.0; }},
      {"expand", {{3, 1}}, [](V x) { return x[0].expand({2, 3, 4}) * 1.0; }},
      {"squeeze_unsqueeze", {{3, 1, 4}}, [](V x) { return x[0].squeeze(1).unsqueeze(0) * 2.0; }},
      {"clone", {{3, 4}}, [](V x) { return x[0].clone() * 2.0; }},
      {"softmax_logprob", {{4, 5}}, [](V x) {
         auto [lp, ent] = softmax_logprob(x[0], idx({1, 4, 0, 2}, {4}));
         return add(mul(lp, 0.7), ent);  // both outputs carry gradient
       }},
      {"softmax_logprob_temp", {{3, 6}}, [](V x) {
         auto [lp, ent] = softmax_logprob(x[0], idx({5, -100, 0}, {3}), 0.7);
         return stack({lp, ent});
       }},
      {"ratio_clip", {{3, 4}}, [](V x) {
         // Old log-probs and advantages chosen so ratios fall inside and outside [0.8, 1.2]
         // with both advantage signs; x stays within ±0.5 of 0 so no ratio sits on a bound.
         Tensor old = Tensor::from_vector(std::vector<double>{0.3, -0.3, 0.05, -0.6, 0.6, 0.0, -0.1, 0.4, -0.45, 0.2,
                                                               0.1, -0.2}, {3, 4});
         Tensor adv = Tensor::from_vector(std::vector<double>{1, -1, 2, -0.5, 0.5, -2, 1, 1, -1, -1, 0.3, 0.7}, {3, 4});
         Tensor mask = Tensor::from_vector(std::vector<double>{1, 1, 1, 0, 1, 1, 1, 1, 1, 0, 1, 1}, {3, 4});
         RatioClipOptions o;
         o.eps_high = 0.28;
         return ratio_clip(mul(x[0], 0.1), old, adv, mask, o).loss;
       }},
      {"dropout_eval", {{3, 4}}, [](V x) { return dropout(x[0], 0.5, false); }},
      {"dropout_train", {{3, 4}}, [](V x) {
         Generator g(7);  // the same mask for every evaluation
         return dropout(x[0], 0.3, true, &g);
       }},
  };
  return k;
}

enum class Layout { contiguous, transposed, expanded };

class GradCheck : public ::testing::TestWithParam<std::tuple<size_t, Layout>> {};

Tensor sample(const Shape& shape, Domain d, Generator& gen, int which) {
  Tensor x = randn(shape, &gen, DType::f64);
  std::vector<double> v = x.to_vector();
  for (size_t i = 0; i < v.size(); ++i) {
    switch (d) {
      case kAny: break;
      case kPositive: v[i] = 0.2 + std::abs(v[i]); break;
      case kAwayFromZero: v[i] = (v[i] >= 0 ? 1 : -1) * (0.2 + std::abs(v[i])); break;
      case kDistinct:  // a grid with no ties within or across inputs
        v[i] = -1.0 + 0.1357 * double((i * 7) % v.size()) + 0.01 * double(i % 3) + 0.05 * which;
        break;
    }
  }
  return Tensor::from_vector(v, shape);
}

TEST_P(GradCheck, MatchesFiniteDifferences) {
  const auto [index, layout_param] = GetParam();
  const Layout layout = layout_param;  // captured by the lambda below (Clang 14: no bindings)
  const GradCase& c = cases()[index];
  Generator gen(42 + index);
  std::vector<Tensor> leaves;
  for (const Shape& s : c.shapes) {
    Shape base = s;
    if (layout == Layout::expanded && s.size() >= 2) base[0] = 1;
    leaves.push_back(sample(base, c.domain, gen, int(leaves.size())).set_requires_grad());
  }
  // The op sees non-contiguous or broadcast views of the leaves.
  auto prepare = [&](const std::vector<Tensor>& ls) {
    std::vector<Tensor> xs;
    for (size_t k = 0; k < ls.size(); ++k) {
      const Tensor& l = ls[k];
      const Shape& s = c.shapes[k];
      if (layout == Layout::transposed && l.dim() >= 2) {
        // Same values, stored transposed: transpose twice through a contiguous copy.
        Tensor t = l.transpose(-1, -2).contiguous().transpose(-1, -2);
        EXPECT_FALSE(t.is_contiguous() && s[s.size() - 1] > 1 && s[s.size() - 2] > 1);
        xs.push_back(t);
      } else if (layout == Layout::expanded && l.dim() >= 2) {
        xs.push_back(l.expand(s));
      } else {
        xs.push_back(l);
      }
    }
    return xs;
  };
  const std::string err = testing::check_gradients(c.fn, leaves, prepare);
  EXPECT_EQ(err, "") << c.name;
}

std::string case_name(const ::testing::TestParamInfo<std::tuple<size_t, Layout>>& info) {
  const char* layouts[] = {"contiguous", "transposed", "expanded"};
  return cases()[std::get<0>(info.param)].name + "_" + layouts[int(std::get<1>(info.param))];
}

INSTANTIATE_TEST_SUITE_P(Ops, GradCheck,
                         ::testing::Combine(::testing::Range<size_t>(0, cases().size()),
                                            ::testing::Values(Layout::contiguous, Layout::transposed,
                                                              Layout::expanded)),
                         case_name);

}  // namespace
}  // namespace rlft
