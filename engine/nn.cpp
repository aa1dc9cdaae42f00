#include "engine/nn.h"

#include <cmath>
#include <map>

namespace rlft::nn {

Tensor Module::forward(const Tensor&) { throw Error("Module::forward: this module does not take one tensor"); }

Tensor& Module::register_parameter(const std::string& name, Tensor t) {
  RLFT_CHECK(name.find('.') == std::string::npos, "register_parameter: name '", name, "' may not contain '.'");
  if (t.defined() && !t.requires_grad()) t.set_requires_grad(true);
  params_.emplace_back(name, t);
  return params_.back().second;
}

std::vector<std::pair<std::string, Tensor>> Module::named_parameters(const std::string& prefix) const {
  std::vector<std::pair<std::string, Tensor>> out;
  for (const auto& [n, t] : params_)
    if (t.defined()) out.emplace_back(prefix + n, t);
  for (const auto& [n, m] : children_) {
    auto sub = m->named_parameters(prefix + n + ".");
    out.insert(out.end(), sub.begin(), sub.end());
  }
  return out;
}

std::vector<Tensor> Module::parameters() const {
  std::vector<Tensor> out;
  for (auto& [n, t] : named_parameters()) out.push_back(t);
  return out;
}

int64_t Module::num_parameters() const {
  int64_t n = 0;
  for (const Tensor& t : parameters()) n += t.numel();
  return n;
}

void Module::train(bool on) {
  training_ = on;
  for (auto& [n, m] : children_) m->train(on);
}

void Module::zero_grad() {
  for (const Tensor& t : parameters()) t.impl()->grad.reset();
}

void Module::copy_from(const Module& other) {
  auto mine = named_parameters(), theirs = other.named_parameters();
  RLFT_CHECK(mine.size() == theirs.size(), "copy_from: ", mine.size(), " parameters vs ", theirs.size());
  for (size_t i = 0; i < mine.size(); ++i) {
    RLFT_CHECK(mine[i].first == theirs[i].first && mine[i].second.shape() == theirs[i].second.shape(),
               "copy_from: parameter ", mine[i].first, " ", mine[i].second.shape(), " does not match ",
               theirs[i].first, " ", theirs[i].second.shape());
    mine[i].second.copy_(theirs[i].second);
  }
}

namespace {
// Replaces each parameter's storage by convert(parameter) once every conversion succeeded.
template <typename Convert>
void convert_parameters(Module& m, Convert convert) {
  std::vector<std::pair<Tensor, Tensor>> moves;
  for (auto& [name, p] : m.named_parameters()) {
    Tensor c = convert(p.detach());
    if (c.storage() != p.storage()) moves.emplace_back(p, c.contiguous());
  }
  for (auto& [p, c] : moves) {
    TensorImpl* impl = p.impl();
    impl->storage = c.storage();
    impl->dtype = c.dtype();
    impl->strides = c.strides();
    impl->offset = c.offset();
    impl->grad.reset();
  }
}
}  // namespace

Module& Module::to(DType dtype) {
  RLFT_CHECK(is_floating(dtype), "Module::to: parameters must be float32 or float64, got ", dtype);
  convert_parameters(*this, [&](const Tensor& p) { return p.to(dtype); });
  return *this;
}

Module& Module::to(Device device) {
  convert_parameters(*this, [&](const Tensor& p) { return p.to(device); });
  return *this;
}

// ---- initialisers ----------------------------------------------------------------------

void uniform_(const Tensor& t, double lo, double hi, Generator& gen) {
  NoGradGuard ng;
  t.copy_(add(mul(rand(t.shape(), &gen, t.dtype(), t.device()), hi - lo), lo));  // drawn where t lives
}

void normal_(const Tensor& t, double mean, double std, Generator& gen) {
  NoGradGuard ng;
  t.copy_(add(mul(randn(t.shape(), &gen, t.dtype(), t.device()), std), mean));
}

void orthogonal_(const Tensor& t, double gain, Generator& gen) {
  RLFT_CHECK(t.dim() >= 2, "orthogonal_: needs at least 2 dimensions, got ", t.shape());
  const int64_t rows = t.shape()[0], cols = t.numel() / rows;
  // QR of the taller orientation by modified Gram-Schmidt in double.
  const bool transpose = rows < cols;
  const int64_t m = transpose ? cols : rows, n = transpose ? rows : cols;  // m >= n
  std::vector<double> a = randn({m, n}, &gen, DType::f64).to_vector();
  std::vector<double> q(static_cast<size_t>(m * n));
  for (int64_t j = 0; j < n; ++j) {
    std::vector<double> v(static_cast<size_t>(m));
    for (int64_t i = 0; i < m; ++i) v[i] = a[i * n + j];
    for (int64_t k = 0; k < j; ++k) {
      double dot = 0;
      for (int64_t i = 0; i < m; ++i) dot += q[i * n + k] * v[i];
      for (int64_t i = 0; i < m; ++i) v[i] -= dot * q[i * n + k];
    }
    double norm = 0;
    for (int64_t i = 0; i < m; ++i) norm += v[i] * v[i];
    norm = std::sqrt(norm);
    // R's diagonal is `norm` > 0 here, so Q is already sign-normalised (d = sign(diag R) = 1).
    for (int64_t i = 0; i < m; ++i) q[i * n + j] = v[i] / norm;
  }
  std::vector<double> out(static_cast<size_t>(rows * cols));
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) out[i * cols + j] = gain * (transpose ? q[j * n + i] : q[i * n + j]);
  t.copy_(Tensor::from_vector(out, t.shape()));
}

// ---- layers ----------------------------------------------------------------------------

Linear::Linear(int64_t in, int64_t out, bool with_bias, Generator& gen) : in_features(in), out_features(out) {
  RLFT_CHECK(in > 0 && out > 0, "Linear: sizes must be positive, got in=", in, " out=", out);
  const double bound = 1.0 / std::sqrt(double(in));
  weight = register_parameter("weight", Tensor::empty({out, in}));
  uniform_(weight, -bound, bound, gen);
  if (with_bias) {
    bias = register_parameter("bias", Tensor::empty({out}));
    uniform_(bias, -bound, bound, gen);
  }
}

void Linear::init_orthogonal(double gain, double bias_value, Generator& gen) {
  orthogonal_(weight, gain, gen);
  if (bias.defined()) bias.fill_(bias_value);
}

Embedding::Embedding(int64_t num, int64_t dim, Generator& gen) {
  RLFT_CHECK(num > 0 && dim > 0, "Embedding: sizes must be positive, got ", num, "x", dim);
  weight = register_parameter("weight", Tensor::empty({num, dim}));
  normal_(weight, 0.0, 1.0, gen);
}

LayerNorm::LayerNorm(int64_t dim, double eps_, bool affine) : eps(eps_) {
  if (affine) {
    weight = register_parameter("weight", Tensor::ones({dim}));
    bias = register_parameter("bias", Tensor::zeros({dim}));
  }
}

Tensor Sequential::forward(const Tensor& x) {
  Tensor h = x;
  for (auto& m : layers_) h = m->forward(h);
  return h;
}

std::shared_ptr<Module> make_activation(const std::string& name) {
  if (name == "tanh") return std::make_shared<Tanh>();
  if (name == "relu") return std::make_shared<ReLU>();
  if (name == "gelu") return std::make_shared<GELU>();
  if (name == "sigmoid") return std::make_shared<Sigmoid>();
  throw Error(str("unknown activation '", name, "' (expected tanh, relu, gelu or sigmoid)"));
}

}  // namespace rlft::nn
