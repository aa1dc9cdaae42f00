#include "engine/tensor.h"

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <iomanip>
#include <sstream>

#include "engine/autograd.h"
#include "engine/ops.h"
#include "engine/ops_common.h"
#include "engine/rng.h"
#include "kernels/cpu/host_allocator.h"
#include "kernels/cpu/strided.h"
#include "kernels/cuda_allocator.h"
#include "kernels/cuda_runtime.h"

namespace rlft {

namespace {
// The elements of `t` (any device, any strides) as a new contiguous CPU tensor, no autograd.
Tensor copy_to_cpu(const Tensor& t) {
  const Device src = t.device();
  if (src.is_cpu()) return t.contiguous();
  const size_t esize = dtype_size(t.dtype());
  if (t.is_contiguous()) {
    Tensor out = Tensor::empty(t.shape(), t.dtype());
    kernels::cuda::copy_device_to_host(out.raw_data(), t.raw_data(), size_t(t.numel()) * esize, src.index);
    return out;
  }
  // A strided view: bring its whole storage over and gather on the CPU (no device kernel
  // needed; views of device tensors are rare outside the ops themselves).
  auto host = std::make_shared<Storage>(t.storage()->nbytes, Device::cpu());
  kernels::cuda::copy_device_to_host(host->data, t.storage()->data, t.storage()->nbytes, src.index);
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = host;
  impl->shape = t.shape();
  impl->strides = t.strides();
  impl->offset = t.offset();
  impl->dtype = t.dtype();
  return Tensor(impl).contiguous();
}
}  // namespace

// ---- storage ---------------------------------------------------------------------------

// CPU storage: 64-byte aligned (one cache line, one AVX-512 vector), large blocks through the
// host caching allocator (kernels/cpu/host_allocator.h). CUDA storage: the caching
// allocator of kernels/cuda_allocator.h (in a build without the backend, cuda_alloc throws
// an error saying so).
Storage::Storage(size_t n, Device dev) : nbytes(n), device(dev) {
  if (dev.is_cuda()) {
    // Devices are counted once per process (cudaGetDeviceCount costs a driver call).
    static const auto devices = [] {
      std::string reason;
      const int count = kernels::cuda::device_count(&reason);
      return std::pair<int, std::string>(count, reason);
    }();
    RLFT_CHECK(dev.index >= 0 && dev.index < devices.first, "tensor allocation on ", dev, ": ",
               devices.first == 0 ? "no CUDA device (" + devices.second + ")"
                                  : str("no such device (", devices.first, " present)"));
    data = kernels::cuda_alloc(n, dev.index);
    return;
  }
  data = kernels::host_alloc(n);
}
Storage::~Storage() {
  if (device.is_cuda()) {
    try {
      kernels::cuda_free(data);
    } catch (const Error&) {
      // A destructor must not throw; the allocator only refuses pointers it never handed out.
    }
  } else {
    kernels::host_free(data, nbytes);
  }
}

Device Device::parse(const std::string& s) {
  if (s == "cpu") return cpu();
  if (s == "cuda") return cuda(0);
  if (s.rfind("cuda:", 0) == 0) {
    const std::string idx = s.substr(5);
    char* end = nullptr;
    const long i = std::strtol(idx.c_str(), &end, 10);
    if (!idx.empty() && *end == '\0' && i >= 0) return cuda(int(i));
  }
  throw Error(str("unknown device '", s, "' (expected cpu, cuda or cuda:N)"));
}

// ---- creation --------------------------------------------------------------------------

Tensor Tensor::empty(const Shape& shape, DType dtype, Device device) {
  for (int64_t d : shape) RLFT_CHECK(d >= 0, "empty: negative dimension in shape ", shape);
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = std::make_shared<Storage>(size_t(shape.numel()) * dtype_size(dtype), device);
  impl->shape = shape;
  impl->strides = shape;
  make_contiguous_strides(impl->strides);
  impl->dtype = dtype;
  return Tensor(std::move(impl));
}

Tensor Tensor::zeros(const Shape& shape, DType dtype, Device device) {
  Tensor t = empty(shape, dtype, device);
  if (device.is_cuda()) {
    t.fill_(0.0);
  } else {
    std::memset(t.raw_data(), 0, t.storage()->nbytes);
  }
  return t;
}
Tensor Tensor::ones(const Shape& shape, DType dtype, Device device) {
  return full(shape, 1.0, dtype, device);
}
Tensor Tensor::full(const Shape& shape, double value, DType dtype, Device device) {
  Tensor t = empty(shape, dtype, device);
  t.fill_(value);
  return t;
}

Tensor Tensor::arange(int64_t n, DType dtype, Device device) {
  return arange(0.0, double(n), 1.0, dtype, device);
}
Tensor Tensor::arange(double start, double end, double step, DType dtype, Device device) {
  RLFT_CHECK(step != 0, "arange: step must be non-zero");
  const double span = (end - start) / step;
  const int64_t n = span > 0 ? int64_t(std::ceil(span)) : 0;
  Tensor t = empty({n}, dtype, device);
  if (device.is_cuda()) {
    kernels::cuda_ops::arange(detail::ctype(dtype), n, start, step, t.raw_data(), device.index);
    return t;
  }
  dispatch_all(dtype, [&](auto tag) {
    using T = decltype(tag);
    T* p = t.data<T>();
    for (int64_t i = 0; i < n; ++i) p[i] = T(start + double(i) * step);
  });
  return t;
}

namespace {
template <typename T>
Tensor from_values(const std::vector<T>& values, const Shape& shape) {
  RLFT_CHECK(int64_t(values.size()) == shape.numel(), "from_vector: ", values.size(),
             " values do not fill shape ", shape, " (", shape.numel(), " elements)");
  Tensor t = Tensor::empty(shape, dtype_of<T>::value);
  if (!values.empty()) std::memcpy(t.raw_data(), values.data(), values.size() * sizeof(T));
  return t;
}
}  // namespace

Tensor Tensor::from_vector(const std::vector<float>& v, const Shape& s) { return from_values(v, s); }
Tensor Tensor::from_vector(const std::vector<double>& v, const Shape& s) { return from_values(v, s); }
Tensor Tensor::from_vector(const std::vector<int64_t>& v, const Shape& s) { return from_values(v, s); }
Tensor Tensor::from_bools(const std::vector<bool>& values, const Shape& shape) {
  std::vector<uint8_t> bytes(values.begin(), values.end());
  return from_values(bytes, shape);
}

// ---- metadata --------------------------------------------------------------------------

int64_t Tensor::size(int64_t d) const { return shape()[wrap_dim(d, dim(), "size")]; }

bool Tensor::is_contiguous() const {
  int64_t expected = 1;
  for (int i = dim() - 1; i >= 0; --i) {
    if (shape()[i] == 1) continue;
    if (strides()[i] != expected) return false;
    expected *= shape()[i];
  }
  return true;
}

double Tensor::item() const {
  RLFT_CHECK(numel() == 1, "item: tensor of shape ", shape(), " has ", numel(),
             " elements, expected exactly one");
  const Tensor c = device().is_cpu() ? *this : copy_to_cpu(*this);
  return dispatch_all(dtype(), [&](auto tag) -> double {
    using T = decltype(tag);
    return double(*c.data<T>());
  });
}

std::vector<double> Tensor::to_vector() const {
  Tensor c = copy_to_cpu(*this).to(DType::f64);
  const double* p = c.data<double>();
  return std::vector<double>(p, p + numel());
}
std::vector<float> Tensor::to_float_vector() const {
  Tensor c = copy_to_cpu(*this).to(DType::f32);
  const float* p = c.data<float>();
  return std::vector<float>(p, p + numel());
}
std::vector<int64_t> Tensor::to_int_vector() const {
  Tensor c = copy_to_cpu(*this).to(DType::i64);
  const int64_t* p = c.data<int64_t>();
  return std::vector<int64_t>(p, p + numel());
}

Tensor& Tensor::set_requires_grad(bool r) {
  RLFT_CHECK(!r || is_floating(dtype()), "set_requires_grad: only floating tensors can require grad, got ",
             dtype());
  RLFT_CHECK(is_leaf(), "set_requires_grad: only leaf tensors can be marked; use detach() first");
  impl_->requires_grad = r;
  return *this;
}

Tensor make_view(const Tensor& base, const Shape& shape, const Shape& strides, int64_t offset) {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = base.storage();
  impl->shape = shape;
  impl->strides = strides;
  impl->offset = offset;
  impl->dtype = base.dtype();
  return Tensor(std::move(impl));
}

Tensor Tensor::detach() const { return make_view(*this, shape(), strides(), offset()); }

// ---- copies ----------------------------------------------------------------------------

namespace {
// dst (any strides) = src (any strides, same shape), converting the element type.
void strided_copy(const Tensor& dst, const Tensor& src) {
  const Shape& shape = dst.shape();
  if (dst.device().is_cuda()) {
    RLFT_CHECK(src.device() == dst.device(), "copy: source on ", src.device(), ", destination on ", dst.device());
    kernels::cuda_ops::copy(detail::ctype(dst.dtype()), detail::ctype(src.dtype()),
                            detail::geometry<2>(shape, {&dst.strides(), &src.strides()}), dst.raw_data(),
                            src.raw_data(), dst.device().index);
    return;
  }
  dispatch_all(dst.dtype(), [&](auto dtag) {
    using D = decltype(dtag);
    dispatch_all(src.dtype(), [&](auto stag) {
      using S = decltype(stag);
      D* d = static_cast<D*>(dst.storage()->data) + dst.offset();
      const S* s = static_cast<const S*>(src.storage()->data) + src.offset();
      kernels::strided_loop<2>(shape.size(), shape.data(), {dst.strides().data(), src.strides().data()},
                               [&](const std::array<int64_t, 2>& off, int64_t n,
                                   const std::array<int64_t, 2>& inc) {
                                 D* dp = d + off[0];
                                 const S* sp = s + off[1];
                                 if (inc[0] == 1 && inc[1] == 1) {
                                   for (int64_t i = 0; i < n; ++i) dp[i] = D(sp[i]);
                                 } else {
                                   for (int64_t i = 0; i < n; ++i) dp[i * inc[0]] = D(sp[i * inc[1]]);
                                 }
                               });
    });
  });
}
}  // namespace

void Tensor::copy_(const Tensor& src) const {
  // From another device: a blocking copy over first (as torch's copy_), then the strided copy.
  const Tensor from = src.device() == device() ? src : src.detach().to(device());
  Tensor s = from.shape() == shape() ? from : from.detach().expand(shape());
  strided_copy(*this, s);
}

void Tensor::fill_(double value) const {
  if (device().is_cuda()) {
    kernels::cuda_ops::fill(detail::ctype(dtype()), detail::geometry<1>(shape(), {&strides()}), raw_data(), value,
                            device().index);
    return;
  }
  dispatch_all(dtype(), [&](auto tag) {
    using T = decltype(tag);
    T* p = static_cast<T*>(storage()->data) + offset();
    const T v = T(value);
    kernels::strided_loop<1>(dim(), shape().data(), {strides().data()},
                             [&](const std::array<int64_t, 1>& off, int64_t n,
                                 const std::array<int64_t, 1>& inc) {
                               for (int64_t i = 0; i < n; ++i) p[off[0] + i * inc[0]] = v;
                             });
  });
}

Tensor Tensor::contiguous() const {
  if (is_contiguous()) return *this;
  return clone();
}

Tensor Tensor::clone() const {
  Tensor out = empty(shape(), dtype(), device());
  strided_copy(out, *this);
  if (any_requires_grad(*this)) {
    record("clone", {*this}, out, [](const Grads& g, const Needs&) -> Grads { return {g[0]}; });
  }
  return out;
}

Tensor Tensor::to(DType t) const {
  if (t == dtype()) return *this;
  Tensor out = empty(shape(), t, device());
  strided_copy(out, *this);
  if (is_floating(t) && any_requires_grad(*this)) {
    const DType src = dtype();
    record("to_dtype", {*this}, out,
           [src](const Grads& g, const Needs&) -> Grads { return {g[0].to(src)}; });
  }
  return out;
}


// Device copies are blocking (cudaMemcpy); the gradient flows back with the opposite copy.
Tensor Tensor::to(Device d) const {
  if (d == device()) return *this;
  Tensor out;
  if (d.is_cpu()) {
    out = copy_to_cpu(*this);  // the source is on a device: always a new tensor
  } else {
    const Tensor host = copy_to_cpu(*this);
    out = empty(shape(), dtype(), d);
    kernels::cuda::copy_host_to_device(out.raw_data(), host.raw_data(),
                                       size_t(numel()) * dtype_size(dtype()), d.index);
  }
  if (any_requires_grad(*this)) {
    record("to_device", {*this}, out,
           [src = device()](const Grads& g, const Needs&) -> Grads { return {g[0].to(src)}; });
  }
  return out;
}

// ---- views -----------------------------------------------------------------------------

namespace {
// Strides for viewing a tensor of (shape, strides) as `target` without copying, or false.
bool view_strides(const Shape& shape, const Shape& strides, const Shape& target, Shape& out) {
  // Split the source into chunks of dims that are mutually contiguous; each target dim must
  // fall within one chunk (PyTorch's computeStride rule).
  out.resize(target.size());
  if (shape.numel() == 0 || shape.size() == 0) {
    out = contiguous_strides(target);
    return true;
  }
  int view_d = target.size() - 1;
  int64_t chunk_base_stride = strides.size() ? strides.back() : 1;
  int64_t tensor_numel = 1, view_numel = 1;
  for (int d = shape.size() - 1; d >= 0; --d) {
    tensor_numel *= shape[d];
    if (d == 0 || (shape[d - 1] != 1 && strides[d - 1] != tensor_numel * chunk_base_stride)) {
      while (view_d >= 0 && (view_numel < tensor_numel || target[view_d] == 1)) {
        out[view_d] = view_numel * chunk_base_stride;
        view_numel *= target[view_d];
        --view_d;
      }
      if (view_numel != tensor_numel) return false;
      if (d > 0) {
        chunk_base_stride = strides[d - 1];
        tensor_numel = 1;
        view_numel = 1;
      }
    }
  }
  return view_d == -1;
}

Shape infer_shape(const Shape& requested, int64_t numel, const char* op, const Shape& from) {
  Shape s = requested;
  int infer = -1;
  int64_t known = 1;
  for (int i = 0; i < s.size(); ++i) {
    if (s[i] == -1) {
      RLFT_CHECK(infer < 0, op, ": only one dimension can be -1 in ", requested);
      infer = i;
    } else {
      RLFT_CHECK(s[i] >= 0, op, ": invalid dimension ", s[i], " in ", requested);
      known *= s[i];
    }
  }
  if (infer >= 0) {
    RLFT_CHECK(known != 0 && numel % known == 0, op, ": cannot view ", from, " (", numel,
               " elements) as ", requested);
    s[infer] = numel / known;
  }
  RLFT_CHECK(s.numel() == numel, op, ": cannot view ", from, " (", numel, " elements) as ", s, " (",
             s.numel(), " elements)");
  return s;
}

void record_reshape(const char* name, const Tensor& in, const Tensor& out) {
  if (!any_requires_grad(in)) return;
  const Shape in_shape = in.shape();
  record(name, {in}, out,
         [in_shape](const Grads& g, const Needs&) -> Grads { return {g[0].reshape(in_shape)}; });
}
}  // namespace

Tensor Tensor::view(const Shape& requested) const {
  const Shape s = infer_shape(requested, numel(), "view", shape());
  Shape st;
  RLFT_CHECK(view_strides(shape(), strides(), s, st), "view: cannot view a tensor of shape ", shape(),
             " with strides ", strides(), " as ", s, " without copying; use reshape()");
  Tensor out = make_view(*this, s, st, offset());
  record_reshape("view", *this, out);
  return out;
}

Tensor Tensor::reshape(const Shape& requested) const {
  const Shape s = infer_shape(requested, numel(), "reshape", shape());
  Shape st;
  if (view_strides(shape(), strides(), s, st)) {
    Tensor out = make_view(*this, s, st, offset());
    record_reshape("reshape", *this, out);
    return out;
  }
  return clone().view(s);
}

Tensor Tensor::flatten(int64_t start_dim, int64_t end_dim) const {
  if (dim() == 0) return reshape({1});
  const int a = wrap_dim(start_dim, dim(), "flatten"), b = wrap_dim(end_dim, dim(), "flatten");
  RLFT_CHECK(a <= b, "flatten: start_dim ", start_dim, " comes after end_dim ", end_dim);
  Shape s;
  for (int i = 0; i < a; ++i) s.push_back(shape()[i]);
  int64_t p = 1;
  for (int i = a; i <= b; ++i) p *= shape()[i];
  s.push_back(p);
  for (int i = b + 1; i < dim(); ++i) s.push_back(shape()[i]);
  return reshape(s);
}

Tensor Tensor::permute(const std::vector<int64_t>& dims) const {
  RLFT_CHECK(int(dims.size()) == dim(), "permute: ", dims.size(), " dims given for a ", dim(),
             "-d tensor of shape ", shape());
  Shape s, st;
  std::vector<int64_t> inverse(dims.size(), -1);
  for (size_t i = 0; i < dims.size(); ++i) {
    const int d = wrap_dim(dims[i], dim(), "permute");
    RLFT_CHECK(inverse[d] < 0, "permute: dimension ", d, " repeated");
    inverse[d] = int64_t(i);
    s.push_back(shape()[d]);
    st.push_back(strides()[d]);
  }
  Tensor out = make_view(*this, s, st, offset());
  if (any_requires_grad(*this)) {
    record("permute", {*this}, out,
           [inverse](const Grads& g, const Needs&) -> Grads { return {g[0].permute(inverse)}; });
  }
  return out;
}

Tensor Tensor::transpose(int64_t d0, int64_t d1) const {
  std::vector<int64_t> dims(dim());
  for (int i = 0; i < dim(); ++i) dims[i] = i;
  std::swap(dims[wrap_dim(d0, dim(), "transpose")], dims[wrap_dim(d1, dim(), "transpose")]);
  return permute(dims);
}

Tensor Tensor::narrow(int64_t d, int64_t start, int64_t length) const {
  const int dd = wrap_dim(d, dim(), "narrow");
  const int64_t n = shape()[dd];
  if (start < 0) start += n;
  RLFT_CHECK(start >= 0 && length >= 0 && start + length <= n, "narrow: range [", start, ", ",
             start + length, ") out of bounds for dimension ", dd, " of size ", n, " (shape ", shape(), ")");
  Shape s = shape();
  s[dd] = length;
  Tensor out = make_view(*this, s, strides(), offset() + start * strides()[dd]);
  if (any_requires_grad(*this)) {
    const Shape in_shape = shape();
    const DType dt = dtype();
    record("narrow", {*this}, out, [in_shape, dt, dd, start, length](const Grads& g, const Needs&) -> Grads {
      Tensor full = Tensor::zeros(in_shape, dt, g[0].device());
      full.narrow(dd, start, length).copy_(g[0]);
      return {full};
    });
  }
  return out;
}

Tensor Tensor::select(int64_t d, int64_t index) const {
  const int dd = wrap_dim(d, dim(), "select");
  const int64_t n = shape()[dd];
  RLFT_CHECK(index >= -n && index < n, "select: index ", index, " out of range for dimension ", dd,
             " of size ", n);
  return narrow(dd, index < 0 ? index + n : index, 1).squeeze(dd);
}

Tensor Tensor::expand(const Shape& target) const {
  RLFT_CHECK(target.size() >= dim(), "expand: cannot expand ", shape(), " to fewer dimensions ", target);
  Shape s, st;
  s.resize(target.size());
  st.resize(target.size());
  const int lead = target.size() - dim();
  for (int i = 0; i < target.size(); ++i) {
    if (i < lead) {
      RLFT_CHECK(target[i] >= 0, "expand: invalid size -1 for a new leading dimension in ", target);
      s[i] = target[i];
      st[i] = 0;
      continue;
    }
    const int64_t have = shape()[i - lead];
    const int64_t want = target[i] == -1 ? have : target[i];
    RLFT_CHECK(have == want || have == 1, "expand: cannot expand ", shape(), " to ", target,
               " (dimension ", i, ": ", have, " vs ", want, ")");
    s[i] = want;
    st[i] = have == want ? strides()[i - lead] : 0;
  }
  if (s == shape()) return *this;
  Tensor out = make_view(*this, s, st, offset());
  if (any_requires_grad(*this)) {
    const Shape in_shape = shape();
    record("expand", {*this}, out,
           [in_shape](const Grads& g, const Needs&) -> Grads { return {sum_to(g[0], in_shape)}; });
  }
  return out;
}

Tensor Tensor::squeeze(int64_t d) const {
  if (dim() == 0) return *this;
  const int dd = wrap_dim(d, dim(), "squeeze");
  if (shape()[dd] != 1) return *this;
  Shape s = shape(), st = strides();
  s.erase(dd);
  st.erase(dd);
  Tensor out = make_view(*this, s, st, offset());
  record_reshape("squeeze", *this, out);
  return out;
}

Tensor Tensor::squeeze() const {
  Shape s;
  for (int64_t x : shape())
    if (x != 1) s.push_back(x);
  return reshape(s);
}

Tensor Tensor::unsqueeze(int64_t d) const {
  const int dd = wrap_dim(d, dim() + 1, "unsqueeze");
  Shape s = shape(), st = strides();
  const int64_t stride = dd < dim() ? strides()[dd] * shape()[dd] : 1;
  s.insert(dd, 1);
  st.insert(dd, stride);
  Tensor out = make_view(*this, s, st, offset());
  record_reshape("unsqueeze", *this, out);
  return out;
}

// ---- printing --------------------------------------------------------------------------

std::string Tensor::to_string(int max_per_dim) const {
  if (!defined()) return "Tensor(undefined)";
  std::ostringstream os;
  os << "Tensor(shape=" << shape() << ", dtype=" << dtype() << ", device=" << device();
  if (requires_grad()) os << ", requires_grad";
  os << ")\n";
  const std::vector<double> v = device().is_cpu() ? to_vector() : std::vector<double>{};
  const Shape st = contiguous_strides(shape());
  os << std::setprecision(6);
  // Recursive print with elision of long dimensions.
  auto rec = [&](auto&& self, int d, int64_t base, int indent) -> void {
    if (d == dim()) {
      os << v[base];
      return;
    }
    os << "[";
    const int64_t n = shape()[d];
    for (int64_t i = 0; i < n; ++i) {
      if (n > max_per_dim && i == max_per_dim / 2) {
        os << "...";
        i = n - max_per_dim / 2 - 1;
        if (d + 1 < dim()) os << ",\n" << std::string(indent + 1, ' ');
        else os << ", ";
        continue;
      }
      self(self, d + 1, base + i * st[d], indent + 1);
      if (i + 1 < n) {
        if (d + 1 < dim()) os << ",\n" << std::string(indent + 1, ' ');
        else os << ", ";
      }
    }
    os << "]";
  };
  if (!v.empty() || dim() > 0) rec(rec, 0, 0, 0);
  return os.str();
}

std::ostream& operator<<(std::ostream& os, const Tensor& t) { return os << t.to_string(); }

// ---- default generator ------------------------------------------------------------------

Generator& default_generator() {
  static Generator gen(0);
  return gen;
}
void manual_seed(uint64_t seed) { default_generator().set_state(seed, 0); }

}  // namespace rlft
