// Host-side dispatch from kernels/cuda_ops.h's element Type to the C++ type the kernels are
// instantiated for: f(float{}), f(double{}), f(int64_t{}) or f(uint8_t{}).
#pragma once

#include <cstdint>

#include "engine/error.h"
#include "kernels/cuda_ops.h"

namespace rlft::kernels::cuda_ops {

// Every element type.
template <typename F>
void dispatch_all(Type type, F&& f) {
  switch (type) {
    case Type::f32:
      f(float{});
      return;
    case Type::f64:
      f(double{});
      return;
    case Type::i64:
      f(int64_t{});
      return;
    case Type::b8:
      f(uint8_t{});
      return;
  }
  throw Error("cuda dispatch: unknown element type");
}

// float and double only; `what` names the caller in the error for other types.
template <typename F>
void dispatch_floating(Type type, const char* what, F&& f) {
  switch (type) {
    case Type::f32:
      f(float{});
      return;
    case Type::f64:
      f(double{});
      return;
    default:
      throw Error(str(what, ": expected a floating element type"));
  }
}

}  // namespace rlft::kernels::cuda_ops
