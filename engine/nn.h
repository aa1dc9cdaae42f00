// nn: Module with hierarchical parameter names, and the layers the models are built from.
//
// A Module owns named parameters and named child modules; named_parameters() walks them
// depth-first in registration order and yields PyTorch-style dotted names
// ("blocks.0.attn.qkv.weight"), which are also the checkpoint keys.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "engine/ops.h"

namespace rlft::nn {

class Module {
 public:
  virtual ~Module() = default;

  // Single-input forward; modules with other signatures define their own.
  virtual Tensor forward(const Tensor& x);
  Tensor operator()(const Tensor& x) { return forward(x); }

  std::vector<std::pair<std::string, Tensor>> named_parameters(const std::string& prefix = "") const;
  std::vector<Tensor> parameters() const;
  int64_t num_parameters() const;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> named_children() const { return children_; }

  void train(bool on = true);
  void eval() { train(false); }
  bool is_training() const { return training_; }
  void zero_grad();
  // Copies every parameter's values from `other` (same architecture; names must match).
  void copy_from(const Module& other);
  // Moves every parameter to `dtype` / `device` in place, as torch's Module.to: the parameter
  // tensors stay the same objects (an optimizer built on them keeps working; its state is
  // not converted), their storage is replaced and accumulated gradients are dropped. All
  // copies are made before any parameter changes, so a failure (no such device) leaves the
  // module as it was.
  Module& to(DType dtype);
  Module& to(Device device);

 protected:
  Tensor& register_parameter(const std::string& name, Tensor t);
  template <typename M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> m) {
    children_.emplace_back(name, m);
    return m;
  }

 private:
  std::vector<std::pair<std::string, Tensor>> params_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
  bool training_ = true;
};

// ---- initialisers (in place, no autograd) ------------------------------------------------
void uniform_(const Tensor& t, double lo, double hi, Generator& gen);
void normal_(const Tensor& t, double mean, double std, Generator& gen);
// (Semi-)orthogonal matrix scaled by gain, as torch.nn.init.orthogonal_ (QR of a Gaussian
// matrix with the signs of R's diagonal folded in).
void orthogonal_(const Tensor& t, double gain, Generator& gen);

// ---- layers ------------------------------------------------------------------------------
class Linear : public Module {
 public:
  // PyTorch's default init: weight and bias ~ U(−1/√in, 1/√in).
  Linear(int64_t in_features, int64_t out_features, bool bias, Generator& gen);
  Tensor forward(const Tensor& x) override { return linear(x, weight, bias); }
  // CleanRL's layer_init: orthogonal weight with `gain`, constant bias.
  void init_orthogonal(double gain, double bias_value, Generator& gen);
  Tensor weight, bias;
  int64_t in_features, out_features;
};

class Embedding : public Module {
 public:
  // weight ~ N(0, 1) as PyTorch (GPT models re-initialise with std 0.02).
  Embedding(int64_t num_embeddings, int64_t dim, Generator& gen);
  Tensor forward(const Tensor& indices) override { return embedding(weight, indices); }
  Tensor weight;
};

class LayerNorm : public Module {
 public:
  explicit LayerNorm(int64_t dim, double eps = 1e-5, bool affine = true);
  Tensor forward(const Tensor& x) override { return layer_norm(x, weight, bias, eps); }
  Tensor weight, bias;
  double eps;
};

class Dropout : public Module {
 public:
  explicit Dropout(double p, Generator* gen = nullptr) : p(p), gen(gen) {}
  Tensor forward(const Tensor& x) override { return dropout(x, p, is_training(), gen); }
  double p;
  Generator* gen;
};

class Tanh : public Module { public: Tensor forward(const Tensor& x) override { return tanh(x); } };
class ReLU : public Module { public: Tensor forward(const Tensor& x) override { return relu(x); } };
class GELU : public Module { public: Tensor forward(const Tensor& x) override { return gelu(x); } };
class Sigmoid : public Module { public: Tensor forward(const Tensor& x) override { return sigmoid(x); } };

// Children named "0", "1", … applied in order.
class Sequential : public Module {
 public:
  Sequential() = default;
  void push_back(std::shared_ptr<Module> m) {
    layers_.push_back(register_module(std::to_string(layers_.size()), std::move(m)));
  }
  Tensor forward(const Tensor& x) override;
  size_t size() const { return layers_.size(); }
  std::shared_ptr<Module> operator[](size_t i) const { return layers_.at(i); }

 private:
  std::vector<std::shared_ptr<Module>> layers_;
};

// Activation module by name: "tanh", "relu", "gelu", "sigmoid"; other names are an error.
std::shared_ptr<Module> make_activation(const std::string& name);

}  // namespace rlft::nn
