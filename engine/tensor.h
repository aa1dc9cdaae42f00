// Tensor: a strided view (shape, strides, offset) of shared storage, with a dtype, a device
// and the autograd fields (requires_grad, grad, the node that produced it).
//
// Views (reshape of a contiguous tensor, permute/transpose, narrow, expand, squeeze,
// unsqueeze) share storage and copy nothing; `contiguous()` copies only when needed.
// Every differentiable op lives in engine/ops.h and records a backward node (autograd.h).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/dtype.h"
#include "engine/shape.h"

namespace rlft {

class Tensor;
struct Node;

// A flat buffer owned by one device. Tensors share it through shared_ptr.
struct Storage {
  void* data = nullptr;
  size_t nbytes = 0;
  Device device;
  Storage(size_t nbytes, Device device);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
};

struct TensorImpl {
  // User-provided, so std::make_shared<TensorImpl>() runs the member initializers only; with
  // the implicit constructor its value-initialisation zeroed the whole object first (a
  // `rep stos` of ~200 bytes per tensor: ~3% of a REINFORCE CartPole run).
  TensorImpl() {}
  std::shared_ptr<Storage> storage;
  Shape shape;
  Shape strides;
  int64_t offset = 0;  // in elements
  DType dtype = DType::f32;
  // autograd
  bool requires_grad = false;
  std::shared_ptr<TensorImpl> grad;  // accumulated gradient of a leaf
  std::shared_ptr<Node> grad_fn;     // the node that produced this tensor (non-leaf)
  uint32_t output_nr = 0;            // which output of grad_fn this is
};

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  // ---- creation ----------------------------------------------------------------------
  static Tensor empty(const Shape& shape, DType dtype = DType::f32, Device device = Device::cpu());
  static Tensor zeros(const Shape& shape, DType dtype = DType::f32, Device device = Device::cpu());
  static Tensor ones(const Shape& shape, DType dtype = DType::f32, Device device = Device::cpu());
  static Tensor full(const Shape& shape, double value, DType dtype = DType::f32,
                     Device device = Device::cpu());
  static Tensor scalar(double value, DType dtype = DType::f32) { return full({}, value, dtype); }
  // [0, n) stepping 1, or [start, end) stepping `step`: element i is start + i·step computed
  // in double, then converted; filled on `device` itself (the same values everywhere).
  static Tensor arange(int64_t n, DType dtype = DType::i64, Device device = Device::cpu());
  static Tensor arange(double start, double end, double step, DType dtype = DType::f32,
                       Device device = Device::cpu());
  // Copies `values` (row-major) into a new tensor of `shape`; sizes must agree.
  static Tensor from_vector(const std::vector<float>& values, const Shape& shape);
  static Tensor from_vector(const std::vector<double>& values, const Shape& shape);
  static Tensor from_vector(const std::vector<int64_t>& values, const Shape& shape);
  static Tensor from_bools(const std::vector<bool>& values, const Shape& shape);

  // ---- metadata ----------------------------------------------------------------------
  bool defined() const { return impl_ != nullptr; }
  const Shape& shape() const { return impl_->shape; }
  const Shape& strides() const { return impl_->strides; }
  int64_t offset() const { return impl_->offset; }
  int dim() const { return impl_->shape.size(); }
  int64_t size(int64_t d) const;
  int64_t numel() const { return impl_->shape.numel(); }
  DType dtype() const { return impl_->dtype; }
  Device device() const { return impl_->storage->device; }
  bool is_contiguous() const;
  TensorImpl* impl() const { return impl_.get(); }
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }
  const std::shared_ptr<Storage>& storage() const { return impl_->storage; }
  bool same(const Tensor& o) const { return impl_ == o.impl_; }

  // Typed pointer to the first element (storage + offset). T must match the dtype.
  template <typename T>
  T* data() const {
    RLFT_CHECK(dtype_of<T>::value == impl_->dtype, "data<T>(): tensor is ", impl_->dtype,
               ", not ", dtype_of<T>::value);
    return static_cast<T*>(impl_->storage->data) + impl_->offset;
  }
  void* raw_data() const {
    return static_cast<char*>(impl_->storage->data) + impl_->offset * dtype_size(impl_->dtype);
  }
  // The single element of a one-element tensor, as double.
  double item() const;
  // All elements in row-major order, converted.
  std::vector<double> to_vector() const;
  std::vector<float> to_float_vector() const;
  std::vector<int64_t> to_int_vector() const;

  // ---- autograd ----------------------------------------------------------------------
  bool requires_grad() const { return impl_->requires_grad; }
  // Marks a leaf as a parameter whose gradient is accumulated in grad().
  Tensor& set_requires_grad(bool r = true);
  bool is_leaf() const { return impl_->grad_fn == nullptr; }
  Tensor grad() const { return impl_->grad ? Tensor(impl_->grad) : Tensor(); }
  void zero_grad() const { impl_->grad.reset(); }
  void set_grad(const Tensor& g) const { impl_->grad = g.impl_; }
  const std::shared_ptr<Node>& grad_fn() const { return impl_->grad_fn; }
  // Reverse-mode differentiation from this tensor. Without `grad`, the tensor must be a
  // scalar (gradient 1). The graph's saved tensors are freed unless retain_graph.
  void backward(const Tensor& grad = Tensor(), bool retain_graph = false) const;
  // Same storage, no autograd history.
  Tensor detach() const;

  // ---- copies and conversions -----------------------------------------------------------
  Tensor contiguous() const;  // itself when already contiguous
  Tensor clone() const;       // always a fresh contiguous copy (differentiable)
  Tensor to(DType dtype) const;
  Tensor to(Device device) const;
  // Copies src (broadcast to this shape) into this tensor in place; no autograd.
  void copy_(const Tensor& src) const;
  void fill_(double value) const;

  // ---- views (share storage; differentiable) -------------------------------------------
  Tensor reshape(const Shape& shape) const;  // a view when possible, else a copy; one -1 allowed
  Tensor view(const Shape& shape) const;     // must be a view: error if the strides forbid it
  Tensor flatten(int64_t start_dim = 0, int64_t end_dim = -1) const;
  Tensor permute(const std::vector<int64_t>& dims) const;
  Tensor transpose(int64_t d0, int64_t d1) const;
  Tensor t() const { return transpose(0, 1); }
  Tensor narrow(int64_t dim, int64_t start, int64_t length) const;
  Tensor select(int64_t dim, int64_t index) const;  // narrow + squeeze
  Tensor expand(const Shape& shape) const;          // broadcast view, -1 keeps a dimension
  Tensor squeeze(int64_t dim) const;
  Tensor squeeze() const;
  Tensor unsqueeze(int64_t dim) const;

  std::string to_string(int max_per_dim = 6) const;

 private:
  std::shared_ptr<TensorImpl> impl_;
};

std::ostream& operator<<(std::ostream& os, const Tensor& t);

// Makes a tensor that aliases `base`'s storage with the given geometry (no autograd).
Tensor make_view(const Tensor& base, const Shape& shape, const Shape& strides, int64_t offset);

// Thread-local switch of graph recording; NoGradGuard turns it off for a scope.
bool grad_enabled();
void set_grad_enabled(bool on);
class NoGradGuard {
 public:
  NoGradGuard() : prev_(grad_enabled()) { set_grad_enabled(false); }
  ~NoGradGuard() { set_grad_enabled(prev_); }
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool prev_;
};

// The default generator used by rand/randn/dropout when none is given.
class Generator;
Generator& default_generator();
void manual_seed(uint64_t seed);

}  // namespace rlft
