// Shape: a small inline vector of dimensions (no heap allocation), also used for strides.
#pragma once

#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <ostream>
#include <string>
#include <vector>

#include "engine/error.h"

namespace rlft {

class Shape {
 public:
  static constexpr int kMaxDims = 8;

  Shape() {}  // user-provided: a `const Shape s;` needs no initializer although d_ has none
  // Copies copy the bytes of all 8 slots (memcpy: the unset ones too, which a member-wise copy
  // of indeterminate int64_t values would not be allowed to read).
  Shape(const Shape& o) noexcept : n_(o.n_) { std::memcpy(d_, o.d_, sizeof(d_)); }
  Shape& operator=(const Shape& o) noexcept {
    std::memcpy(d_, o.d_, sizeof(d_));
    n_ = o.n_;
    return *this;
  }
  Shape(std::initializer_list<int64_t> dims) { assign(dims.begin(), dims.end()); }
  Shape(const std::vector<int64_t>& dims) { assign(dims.begin(), dims.end()); }
  template <typename It>
  Shape(It first, It last) { assign(first, last); }

  int size() const { return n_; }
  bool empty() const { return n_ == 0; }
  int64_t operator[](int i) const { return d_[i]; }
  int64_t& operator[](int i) { return d_[i]; }
  const int64_t* begin() const { return d_; }
  const int64_t* end() const { return d_ + n_; }
  int64_t* begin() { return d_; }
  int64_t* end() { return d_ + n_; }
  const int64_t* data() const { return d_; }
  int64_t back() const { return d_[n_ - 1]; }

  void push_back(int64_t v) {
    RLFT_CHECK(n_ < kMaxDims, "tensors have at most ", kMaxDims, " dimensions");
    d_[n_++] = v;
  }
  void pop_back() { --n_; }
  void insert(int pos, int64_t v) {
    RLFT_CHECK(n_ < kMaxDims, "tensors have at most ", kMaxDims, " dimensions");
    for (int i = n_; i > pos; --i) d_[i] = d_[i - 1];
    d_[pos] = v;
    ++n_;
  }
  void erase(int pos) {
    for (int i = pos; i + 1 < n_; ++i) d_[i] = d_[i + 1];
    --n_;
  }
  void resize(int n, int64_t fill = 0) {
    RLFT_CHECK(n <= kMaxDims, "tensors have at most ", kMaxDims, " dimensions");
    for (int i = n_; i < n; ++i) d_[i] = fill;
    n_ = n;
  }

  int64_t numel() const {
    int64_t p = 1;
    for (int i = 0; i < n_; ++i) p *= d_[i];
    return p;
  }
  std::vector<int64_t> vec() const { return std::vector<int64_t>(begin(), end()); }

  bool operator==(const Shape& o) const {
    if (n_ != o.n_) return false;
    for (int i = 0; i < n_; ++i)
      if (d_[i] != o.d_[i]) return false;
    return true;
  }
  bool operator!=(const Shape& o) const { return !(*this == o); }

  std::string to_string() const {
    std::string s = "[";
    for (int i = 0; i < n_; ++i) {
      if (i) s += ",";
      s += std::to_string(d_[i]);
    }
    return s + "]";
  }

 private:
  template <typename It>
  void assign(It first, It last) {
    n_ = 0;
    for (; first != last; ++first) push_back(int64_t(*first));
  }
  // Only d_[0, n_) is ever read as numbers (every accessor and comparison goes by n_); the
  // rest is left unset, so making a Shape does not zero 64 bytes (a tensor holds two).
  int64_t d_[kMaxDims];
  int n_ = 0;
};

inline std::ostream& operator<<(std::ostream& os, const Shape& s) { return os << s.to_string(); }

// Row-major contiguous strides of a shape, written over `st` (which has the shape's rank and
// values on entry): in place, so a tensor's strides are not built in a temporary and copied
// (reading the 8-byte stores back as 16-byte loads stalled store forwarding: ~2.5% of a
// REINFORCE CartPole run in Tensor::empty).
inline void make_contiguous_strides(Shape& st) {
  int64_t s = 1;
  for (int i = st.size() - 1; i >= 0; --i) {
    const int64_t d = st[i];
    st[i] = s;
    s *= d;
  }
}
inline Shape contiguous_strides(const Shape& shape) {
  Shape st = shape;
  make_contiguous_strides(st);
  return st;
}

// Normalises a possibly negative dimension index against `ndim`; `op` names the caller.
inline int wrap_dim(int64_t dim, int ndim, const char* op) {
  const int64_t n = ndim == 0 ? 1 : ndim;
  RLFT_CHECK(dim >= -n && dim < n, op, ": dimension ", dim, " out of range for a ", ndim,
             "-d tensor (expected in [", -n, ", ", n - 1, "])");
  return int(dim < 0 ? dim + n : dim);
}

// NumPy broadcasting of two shapes; `op` names the caller in the error.
inline Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op) {
  const int n = a.size() > b.size() ? a.size() : b.size();
  Shape out;
  out.resize(n);
  for (int i = 0; i < n; ++i) {
    const int ia = a.size() - n + i, ib = b.size() - n + i;
    const int64_t da = ia >= 0 ? a[ia] : 1, db = ib >= 0 ? b[ib] : 1;
    RLFT_CHECK(da == db || da == 1 || db == 1, op, ": shapes ", a, " and ", b,
               " cannot be broadcast (dimension ", i, ": ", da, " vs ", db, ")");
    out[i] = da == 1 ? db : da;
  }
  return out;
}

}  // namespace rlft
