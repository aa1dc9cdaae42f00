// index — row selection, gather and their scatter-add backward (declared in kernels/cuda_ops.h).
//
//   index_select  out[o, i, j] = src[o, idx[i], j]          (embedding forward: outer = 1)
//   index_add     dst[o, idx[i], j] += src[o, i, j]         (embedding / index_select backward)
//   gather        out[p] = a[p with index[p] along dim]
//   scatter_add   dst[p with index[p] along dim] += src[p]  (gather backward)
//   check_targets valid[i] = (t[i] ≠ ignore and 0 ≤ t[i] < C)  (cross_entropy, one_hot)
// One version each, a grid-stride loop over the output (or source) elements. The adds use
// atomicAdd (float and double: sm_60 and later), so repeated indices accumulate correctly but
// the order of the float additions — and so the last bits — can differ between runs; the CPU
// adds in index order.
// Index checks on the device (kernels/cuda_ops.h): every kernel compares its index with the
// bound (one compare per element, no extra traffic); an index out of range reads as 0 or adds
// nothing, and the first one per device is recorded: the thread that wins a compare-and-swap
// on a device-memory claim writes (op, index, bound, position) into a host-mapped slot with
// plain stores and then its `ready` word. The host reads the slot after any synchronisation
// with one load from pinned memory — no API call, no copy — so a correct program pays
// nothing for the check, where a host-side check cost a copy of the indices and a stream
// synchronisation per call.
// Traffic per element: select/gather read one element and the index (8 bytes, cached across
// a row for index_select), write one; the adds read the source and do one atomic.
// Reference: engine/ops_index.cpp and ops_nn.cpp (embedding) CPU branches.
#include <cuda_runtime.h>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/dispatch.cuh"
#include "kernels/cuda/geometry.cuh"
#include "kernels/cuda_ops.h"

namespace rlft::kernels::cuda_ops {

namespace {

using cuda_detail::blocks_for;
using cuda_detail::kThreads;

// One slot per device in host-mapped pinned memory.
struct IndexFault {
  int ready;  // 1 once the fields below are written (and visible: __threadfence_system first)
  int op;     // IndexOp
  long long index, bound, position;
};

// Per device (a __device__ variable exists once per device): 0 until an out-of-range index
// claims the slot; the host clears it after reporting.
__device__ int g_fault_claimed = 0;

// The slots (kernels/cuda/common.cuh), allocated on the first index kernel.
cuda_detail::MappedFaultSlots<IndexFault> g_faults;

// The slot kernels on `device` write to (null for device >= 64: faults there are still
// skipped, not reported).
IndexFault* fault_slot(int device) { return g_faults.get(device); }

// Called by a thread whose index is out of range: the first one on this device reports.
__device__ __noinline__ void record_fault(IndexFault* slot, IndexOp op, int64_t index, int64_t bound,
                                          int64_t position) {
  if (slot == nullptr || atomicCAS(&g_fault_claimed, 0, 1) != 0) return;
  volatile IndexFault* v = slot;
  v->op = int(op);
  v->index = index;
  v->bound = bound;
  v->position = position;
  __threadfence_system();
  v->ready = 1;
}

__device__ __forceinline__ bool in_range(int64_t i, int64_t n) { return i >= 0 && i < n; }

const char* op_name(int op) {
  switch (IndexOp(op)) {
    case IndexOp::embedding:
      return "embedding";
    case IndexOp::index_select:
      return "index_select";
    case IndexOp::gather:
      return "gather";
    case IndexOp::cross_entropy:
      return "cross_entropy";
    case IndexOp::one_hot:
      return "one_hot";
  }
  return "index";
}

template <typename T>
__global__ void index_select_kernel(int64_t outer, int64_t n_src, int64_t inner, const T* src,
                                    const int64_t* idx, int64_t k, T* out, IndexFault* fault,
                                    IndexOp op) {
  const int64_t total = outer * k * inner;
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < total;
       e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t j = e % inner, t = e / inner;
    const int64_t i = t % k, o = t / k;
    const int64_t r = idx[i];
    if (in_range(r, n_src)) {
      out[e] = src[(o * n_src + r) * inner + j];
    } else {
      out[e] = T(0);
      record_fault(fault, op, r, n_src, i);
    }
  }
}

template <typename T>
__global__ void index_add_kernel(int64_t outer, int64_t n_dst, int64_t inner, T* dst,
                                 const int64_t* idx, int64_t k, const T* src, IndexFault* fault,
                                 IndexOp op) {
  const int64_t total = outer * k * inner;
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < total;
       e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t j = e % inner, t = e / inner;
    const int64_t i = t % k, o = t / k;
    const int64_t r = idx[i];
    if (in_range(r, n_dst)) {
      atomicAdd(dst + (o * n_dst + r) * inner + j, src[e]);
    } else {
      record_fault(fault, op, r, n_dst, i);
    }
  }
}

template <typename T>
__global__ void gather_kernel(Geometry g, T* out, const int64_t* index, const T* a,
                              int64_t a_dim_stride, int64_t n_dim, IndexFault* fault) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < g.numel;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t r = index[offset_of(g, 1, i)];
    if (in_range(r, n_dim)) {
      out[offset_of(g, 0, i)] = a[offset_of(g, 2, i) + r * a_dim_stride];
    } else {
      out[offset_of(g, 0, i)] = T(0);
      record_fault(fault, IndexOp::gather, r, n_dim, i);
    }
  }
}

template <typename T>
__global__ void scatter_add_kernel(Geometry g, const T* src, const int64_t* index, T* dst,
                                   int64_t dst_dim_stride, int64_t n_dim, IndexFault* fault) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < g.numel;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t r = index[offset_of(g, 1, i)];
    if (in_range(r, n_dim)) {
      atomicAdd(dst + offset_of(g, 2, i) + r * dst_dim_stride, src[offset_of(g, 0, i)]);
    } else {
      record_fault(fault, IndexOp::gather, r, n_dim, i);
    }
  }
}

template <typename T>
__global__ void check_targets_kernel(const int64_t* t, int64_t n, int64_t n_classes,
                                     int64_t ignore_index, T* valid, IndexFault* fault,
                                     IndexOp op) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t r = t[i];
    const bool ignored = r == ignore_index, ok = in_range(r, n_classes);
    if (valid) valid[i] = T(!ignored && ok ? 1 : 0);
    if (!ignored && !ok) record_fault(fault, op, r, n_classes, i);
  }
}

}  // namespace

void check_index_faults(int device) {
  volatile IndexFault* slot = g_faults.peek(device);
  if (slot == nullptr || slot->ready == 0) return;  // null: no index kernel ran yet
  const IndexFault f{1, slot->op, slot->index, slot->bound, slot->position};
  // Clear before throwing, so the next fault is reported too.
  slot->ready = 0;
  cuda_detail::set_device(device);
  const int zero = 0;
  RLFT_CUDA_CHECK(cudaMemcpyToSymbol(g_fault_claimed, &zero, sizeof zero));
  throw Error(str(op_name(f.op), ": index ", f.index, " out of range [0, ", f.bound, ") at position ",
                  f.position, " (found on cuda:", device, ", reported at the next synchronisation)"));
}

void index_select(Type type, int64_t outer, int64_t n_src, int64_t inner, const void* src,
                  const int64_t* idx, int64_t k, void* out, int device, IndexOp op) {
  const int64_t total = outer * k * inner;
  if (total == 0) return;
  cuda_detail::set_device(device);
  IndexFault* fault = fault_slot(device);
  dispatch_all(type, [&](auto tag) {
    using T = decltype(tag);
    index_select_kernel<T><<<blocks_for(total), kThreads>>>(
        outer, n_src, inner, static_cast<const T*>(src), idx, k, static_cast<T*>(out), fault, op);
  });
  RLFT_CUDA_CHECK_LAUNCH();
}

void index_add(Type type, int64_t outer, int64_t n_dst, int64_t inner, void* dst,
               const int64_t* idx, int64_t k, const void* src, int device, IndexOp op) {
  const int64_t total = outer * k * inner;
  if (total == 0) return;
  cuda_detail::set_device(device);
  IndexFault* fault = fault_slot(device);
  dispatch_floating(type, "cuda index_add", [&](auto tag) {
    using T = decltype(tag);
    index_add_kernel<T><<<blocks_for(total), kThreads>>>(
        outer, n_dst, inner, static_cast<T*>(dst), idx, k, static_cast<const T*>(src), fault, op);
  });
  RLFT_CUDA_CHECK_LAUNCH();
}

void check_targets(Type type, const int64_t* t, int64_t n, int64_t n_classes, int64_t ignore_index,
                   void* valid, int device, IndexOp op) {
  if (n == 0) return;
  cuda_detail::set_device(device);
  IndexFault* fault = fault_slot(device);
  dispatch_floating(type, "cuda check_targets", [&](auto tag) {
    using T = decltype(tag);
    check_targets_kernel<T><<<blocks_for(n), kThreads>>>(t, n, n_classes, ignore_index,
                                                         static_cast<T*>(valid), fault, op);
  });
  RLFT_CUDA_CHECK_LAUNCH();
}

void gather(Type type, const Geometry& g, void* out, const int64_t* index, const void* a,
            int64_t a_dim_stride, int64_t n_dim, int device) {
  if (g.numel == 0) return;
  cuda_detail::set_device(device);
  IndexFault* fault = fault_slot(device);
  dispatch_all(type, [&](auto tag) {
    using T = decltype(tag);
    gather_kernel<T><<<blocks_for(g.numel), kThreads>>>(
        g, static_cast<T*>(out), index, static_cast<const T*>(a), a_dim_stride, n_dim, fault);
  });
  RLFT_CUDA_CHECK_LAUNCH();
}

void scatter_add(Type type, const Geometry& g, const void* src, const int64_t* index, void* dst,
                 int64_t dst_dim_stride, int64_t n_dim, int device) {
  if (g.numel == 0) return;
  cuda_detail::set_device(device);
  IndexFault* fault = fault_slot(device);
  dispatch_floating(type, "cuda scatter_add", [&](auto tag) {
    using T = decltype(tag);
    scatter_add_kernel<T><<<blocks_for(g.numel), kThreads>>>(g, static_cast<const T*>(src), index,
                                                             static_cast<T*>(dst), dst_dim_stride,
                                                             n_dim, fault);
  });
  RLFT_CUDA_CHECK_LAUNCH();
}

}  // namespace rlft::kernels::cuda_ops
