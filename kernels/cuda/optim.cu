// optim — the optimiser updates of engine/optim.cpp on device parameters (declared in
// kernels/cuda_ops.h). Adam: a multi-tensor launch — up to 24 parameters per launch, their
// pointers in the kernel's arguments. Two layouts of that launch (kernels/cuda_ops.h,
// AdamArgs::layout): chunked (the default) gives each block one chunk of kAdamChunk elements of
// one tensor (a table of the tensors' first blocks in the arguments), so the grid holds only
// blocks with work; grid, blockIdx.y picking the parameter and the x blocks a grid-stride loop
// over its elements, sizes the x blocks for the largest tensor of the launch, so every smaller
// tensor's row of blocks is mostly blocks that exit at once. GPT-2 small's 148 tensors (7
// launches) are 4.76M blocks in grid, 0.49M of them with work, and 0.12M in chunked. Measured
// on an H200 (BENCHMARKS.md, 2026-11-27): a step of GPT-2 small's 124M parameters takes 0.89 ms
// chunked (81% of peak DRAM bandwidth) against 3.47 ms grid (21%); the toy `mini`'s 4.8M,
// 57 µs against 77 µs.
// SGD: one launch per parameter.
//
//   Adam(W):  decoupled: w ← w·(1 − lr·wd), else g ← g + wd·w;  m ← β1·m + (1 − β1)·g;
//             v ← β2·v + (1 − β2)·g²;  w ← w − (lr/bc1)·m / (√v/√bc2 + eps)
//   SGD:      d = g + wd·w; with momentum v ← first ? d : μ·v + (1 − dampening)·d,
//             d = nesterov ? d + μ·v : v;  w ← w − lr·d   (in double, as the CPU)
// The arithmetic is the CPU loop's, in the same type and order, and each product, sum,
// quotient and square root is rounded on its own (the _rn intrinsics below): nvcc would
// otherwise contract a·b + c into one FMA wherever it chooses, and it chose differently in the
// two Adam layouts' kernels (the H200 found their weights a few ulp apart). So both layouts and
// the CPU (built with -ffp-contract=off) write the same bits.
// Traffic per element: Adam reads w, g, m, v and writes w, m, v (28 bytes float); SGD 12–20.
// Divergence check (Adam, as the CPU's "training diverged" error, without a synchronisation
// per step): each thread tests every weight it writes with isfinite (in registers, no extra
// traffic) and, only for a NaN or ±inf, claims a device word with a compare-and-swap;
// the winner writes (step, parameter index, its position in the call, the call's ticket)
// into a host-mapped slot (MappedFaultSlots, common.cuh), the same path as index.cu's bad
// indices. The host polls it at the next synchronisation (check_adam_faults, called by
// kernels/cuda/runtime.cu) and finds the parameter's shape in a log of the last few calls'
// shapes, kept on the host per device by ticket.
// Reference: Adam::step and SGD::step in engine/optim.cpp.
#include <cuda_runtime.h>

#include <mutex>
#include <string>
#include <vector>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda_ops.h"

namespace rlft::kernels::cuda_ops {

namespace {

// Correctly rounded operations that nvcc never fuses (common.cuh; see the header).
using cuda_detail::add_rn;
using cuda_detail::div_rn;
using cuda_detail::mul_rn;
using cuda_detail::sqrt_rn;
using cuda_detail::sub_rn;

// One tensor as the kernel sees it (AdamTensor less its host-only shape).
struct AdamSlice {
  void* w;
  const void* g;
  void* m;
  void* v;
  int64_t n;
  int64_t index;  // in the optimiser's parameter list
};

// Up to kAdamTensorsPerLaunch tensors, by value in the kernel's argument space (24 × 48 bytes).
struct AdamBatch {
  AdamSlice t[kAdamTensorsPerLaunch];
};

// A diverged step, one slot per device in host-mapped memory.
struct AdamFault {
  int ready;     // 1 once the fields below are written (and visible: __threadfence_system first)
  int position;  // the tensor's position in its adam_step call's list
  long long call, step, index, numel;  // the call's ticket, the optimiser's step, the parameter
};

// Per device: 0 until a non-finite weight claims the slot; the host clears it after reporting.
__device__ int g_adam_fault_claimed = 0;

cuda_detail::MappedFaultSlots<AdamFault> g_adam_faults;

// Where a launch reports: its device's slot (null: unreported), the adam_step call's ticket and
// the position of the batch's first tensor in that call.
struct AdamReport {
  AdamFault* slot;
  long long call;
  int first;
};

// Called for each non-finite weight written: the first one on this device reports. The plain
// load first keeps a step that went NaN everywhere from queueing an atomic per element.
// (Arguments by value, so no kernel parameter has its address taken.)
__device__ __noinline__ void record_adam_fault(AdamFault* slot, long long call, int position,
                                               long long step, long long index, long long numel) {
  if (slot == nullptr || *static_cast<volatile int*>(&g_adam_fault_claimed) != 0 ||
      atomicCAS(&g_adam_fault_claimed, 0, 1) != 0)
    return;
  volatile AdamFault* f = slot;
  f->position = position;
  f->call = call;
  f->step = step;
  f->index = index;
  f->numel = numel;
  __threadfence_system();
  f->ready = 1;
}

// One element's update (both layouts call this, so they write the same bits); false when the
// new weight is NaN or ±inf.
template <typename T>
__device__ __forceinline__ bool adam_update_one(T& w, T g, T& m, T& v, const AdamArgs& a) {
  const T b1 = T(a.beta1), b2 = T(a.beta2), one = T(1);
  if (a.decoupled)
    w = mul_rn(w, T(a.decay));
  else
    g = add_rn(g, mul_rn(T(a.l2), w));
  m = add_rn(mul_rn(b1, m), mul_rn(one - b1, g));
  v = add_rn(mul_rn(b2, v), mul_rn(mul_rn(one - b2, g), g));
  w = sub_rn(w, div_rn(mul_rn(T(a.step_size), m),
                       add_rn(div_rn(sqrt_rn(v), T(a.sqrt_bc2)), T(a.eps))));
  return isfinite(w);
}

// blockIdx.y picks the tensor; the x blocks stride over its elements. The divergence test is
// inside the loop (a compare and a branch never taken while training is sane; the call is out
// of line): a flag carried to the end of the loop cost 6–8 more registers. With the launch
// bounds ptxas fits float in 32 registers (a full SM at 256 threads, as before the check) and
// double in 40 on sm_90 (44 before), with no spills (sm_80: 28 and 32).
template <typename T>
__global__ void __launch_bounds__(cuda_detail::kThreads, sizeof(T) == 4 ? 8 : 6)
    adam_kernel(AdamBatch batch, AdamArgs a, AdamReport report) {
  const AdamSlice& p = batch.t[blockIdx.y];
  T* w = static_cast<T*>(p.w);
  const T* g = static_cast<const T*>(p.g);
  T* m = static_cast<T*>(p.m);
  T* v = static_cast<T*>(p.v);
  for (int64_t k = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; k < p.n;
       k += int64_t(gridDim.x) * blockDim.x) {
    T wk = w[k], mk = m[k], vk = v[k];
    const bool finite = adam_update_one(wk, g[k], mk, vk, a);
    m[k] = mk;
    v[k] = vk;
    w[k] = wk;
    if (!finite)
      record_adam_fault(report.slot, report.call, report.first + int(blockIdx.y), a.step, p.index,
                        p.n);
  }
}

// The chunked layout's launch: the grid layout's tensors plus, for each, its first block
// (first_block[count] = the grid's size).
struct AdamChunkedBatch {
  AdamBatch slices;
  int64_t first_block[kAdamTensorsPerLaunch + 1];
};

// Each block updates one chunk of one tensor (adam_chunk, kernels/cuda_ops.h: the tensor whose
// blocks hold blockIdx.x, found by a scan of the arguments' table). Each thread loads
// its kPer elements (strided by the block's width, so each load instruction of a warp reads
// 128 contiguous bytes) of all four arrays before it computes and writes any: 4·kPer loads in
// flight per thread.
template <typename T>
__global__ void __launch_bounds__(cuda_detail::kThreads)
    adam_chunked_kernel(AdamChunkedBatch batch, int count, AdamArgs a, AdamReport report) {
  constexpr int kPer = kAdamChunk / cuda_detail::kThreads;
  static_assert(kPer * cuda_detail::kThreads == kAdamChunk, "a chunk is whole rows of threads");
  const AdamChunk chunk = adam_chunk(int64_t(blockIdx.x), batch.first_block, count);
  const int i = chunk.tensor;
  const AdamSlice& p = batch.slices.t[i];
  T* w = static_cast<T*>(p.w);
  const T* g = static_cast<const T*>(p.g);
  T* m = static_cast<T*>(p.m);
  T* v = static_cast<T*>(p.v);
  const int64_t base = chunk.begin + threadIdx.x;
  T wr[kPer], gr[kPer], mr[kPer], vr[kPer];
#pragma unroll
  for (int j = 0; j < kPer; ++j) {
    const int64_t k = base + int64_t(j) * cuda_detail::kThreads;
    if (k < p.n) {
      wr[j] = w[k];
      gr[j] = g[k];
      mr[j] = m[k];
      vr[j] = v[k];
    }
  }
  bool finite = true;
#pragma unroll
  for (int j = 0; j < kPer; ++j) {
    const int64_t k = base + int64_t(j) * cuda_detail::kThreads;
    if (k < p.n) {
      finite &= adam_update_one(wr[j], gr[j], mr[j], vr[j], a);
      m[k] = mr[j];
      v[k] = vr[j];
      w[k] = wr[j];
    }
  }
  if (!finite) record_adam_fault(report.slot, report.call, report.first + i, a.step, p.index, p.n);
}

template <typename T>
__global__ void sgd_kernel(int64_t n, T* w, const T* g, T* v, double lr, double momentum,
                           double dampening, double weight_decay, bool nesterov, bool first) {
  for (int64_t k = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; k < n;
       k += int64_t(gridDim.x) * blockDim.x) {
    double d = add_rn(double(g[k]), mul_rn(weight_decay, double(w[k])));
    if (v) {
      const double vk = first ? d : add_rn(mul_rn(momentum, double(v[k])), mul_rn(1 - dampening, d));
      v[k] = T(vk);
      d = nesterov ? add_rn(d, mul_rn(momentum, vk)) : vk;
    }
    w[k] = T(sub_rn(double(w[k]), mul_rn(lr, d)));
  }
}

}  // namespace

namespace {

// The shapes of the last kCallsLogged adam_step calls on one device, by ticket: what the
// report prints for a ticket still here (a fault is normally read back within a call or two;
// an older one is reported with its element count).
constexpr int kCallsLogged = 8;
struct ShapeLog {
  std::mutex mutex;
  long long next_call = 0;
  struct Call {
    long long call = -1;
    std::vector<int> ndim;  // per tensor of the call; -1: shape not given
    std::vector<int64_t> dims;
  } calls[kCallsLogged];
};
ShapeLog g_shape_logs[cuda_detail::MappedFaultSlots<AdamFault>::kMaxDevices];

// Whether `c` holds exactly the shapes of `tensors` (reads only).
bool same_shapes(const ShapeLog::Call& c, const AdamTensor* tensors, int count) {
  if (c.call < 0 || c.ndim.size() != size_t(count)) return false;
  size_t offset = 0;
  for (int i = 0; i < count; ++i) {
    const AdamTensor& t = tensors[i];
    const int nd = t.shape ? t.ndim : -1;
    if (c.ndim[size_t(i)] != nd) return false;
    for (int d = 0; d < nd; ++d)
      if (c.dims[offset + size_t(d)] != t.shape[d]) return false;
    offset += size_t(nd > 0 ? nd : 0);
  }
  return true;
}

// Records the shapes of one call (no allocation once the vectors have grown); its ticket. A
// call with the same shapes as the last one logged (a training loop's every step) reuses that
// ticket: nothing is copied, and the list stays in the log however old a fault from it is.
// The lock itself is uncontended (one per call, ~40 ns); the copy it saves was the cost
// (~30 ns per tensor).
long long log_shapes(int device, const AdamTensor* tensors, int count) {
  ShapeLog& log = g_shape_logs[device];
  std::lock_guard<std::mutex> lock(log.mutex);
  if (log.next_call > 0) {
    const ShapeLog::Call& last = log.calls[(log.next_call - 1) % kCallsLogged];
    if (same_shapes(last, tensors, count)) return last.call;
  }
  const long long call = log.next_call++;
  ShapeLog::Call& c = log.calls[call % kCallsLogged];
  c.call = call;
  c.ndim.clear();
  c.dims.clear();
  for (int i = 0; i < count; ++i) {
    const AdamTensor& t = tensors[i];
    c.ndim.push_back(t.shape ? t.ndim : -1);
    if (t.shape) c.dims.insert(c.dims.end(), t.shape, t.shape + t.ndim);
  }
  return call;
}

// "shape [4,5]" (as rlft::Shape prints) while the call is in the log, else "n elements".
std::string shape_text(int device, const AdamFault& f) {
  ShapeLog& log = g_shape_logs[device];
  std::lock_guard<std::mutex> lock(log.mutex);
  const ShapeLog::Call& c = log.calls[(f.call < 0 ? 0 : f.call) % kCallsLogged];
  if (f.call >= 0 && c.call == f.call && f.position >= 0 && size_t(f.position) < c.ndim.size() &&
      c.ndim[size_t(f.position)] >= 0) {
    size_t offset = 0;
    for (int i = 0; i < f.position; ++i)
      offset += size_t(c.ndim[size_t(i)] > 0 ? c.ndim[size_t(i)] : 0);
    std::string s = "shape [";
    for (int d = 0; d < c.ndim[size_t(f.position)]; ++d) {
      if (d) s += ",";
      s += std::to_string(c.dims[offset + size_t(d)]);
    }
    return s + "]";
  }
  return str(f.numel, " elements");
}

}  // namespace

void check_adam_faults(int device) {
  volatile AdamFault* slot = g_adam_faults.peek(device);
  if (slot == nullptr || slot->ready == 0) return;  // null: no Adam step ran yet
  AdamFault f{};
  f.position = slot->position;
  f.call = slot->call;
  f.step = slot->step;
  f.index = slot->index;
  f.numel = slot->numel;
  // Clear before throwing, so the next divergence is reported too.
  slot->ready = 0;
  cuda_detail::set_device(device);
  const int zero = 0;
  RLFT_CUDA_CHECK(cudaMemcpyToSymbol(g_adam_fault_claimed, &zero, sizeof zero));
  throw Error(
      str("Adam: step ", f.step, " made parameter ", f.index, " (", shape_text(device, f),
          ") non-finite: training diverged (a smaller learning rate, or gradient clipping?) "
          "(found on cuda:",
          device, " by the fused update, reported at the next synchronisation)"));
}

void adam_step(Type type, const AdamTensor* tensors, int count, const AdamArgs& args, int device) {
  if (count == 0) return;
  RLFT_CHECK(type == Type::f32 || type == Type::f64,
             "cuda adam_step: expected a floating element type");
  const int layout = args.layout == 0 ? kAdamLayoutGrid : args.layout;
  RLFT_CHECK(layout == kAdamLayoutGrid || layout == kAdamLayoutChunked,
             "cuda adam_step: unknown layout ", layout, " (1 grid, 2 chunked)");
  cuda_detail::set_device(device);
  AdamFault* slot = g_adam_faults.get(device);  // null past the 64th device: unchecked
  const long long call = slot ? log_shapes(device, tensors, count) : -1;
  for (int first = 0; first < count; first += kAdamTensorsPerLaunch) {
    const int k = count - first < kAdamTensorsPerLaunch ? count - first : kAdamTensorsPerLaunch;
    const AdamReport report{slot, call, first};
    AdamBatch batch{};
    int64_t sizes[kAdamTensorsPerLaunch], largest = 0;
    for (int i = 0; i < k; ++i) {
      const AdamTensor& t = tensors[first + i];
      batch.t[i] = AdamSlice{t.w, t.g, t.m, t.v, t.n, t.index};
      sizes[i] = t.n;
      if (t.n > largest) largest = t.n;
    }
    if (largest == 0) continue;
    if (layout == kAdamLayoutChunked) {
      AdamChunkedBatch chunked{batch, {}};
      const int64_t blocks = adam_first_blocks(sizes, k, chunked.first_block);
      RLFT_CHECK(blocks < (int64_t(1) << 31), "cuda adam_step: ", blocks,
                 " chunks in one launch (at most 2^31 - 1)");
      if (type == Type::f32) {
        adam_chunked_kernel<float>
            <<<unsigned(blocks), cuda_detail::kThreads>>>(chunked, k, args, report);
      } else {
        adam_chunked_kernel<double>
            <<<unsigned(blocks), cuda_detail::kThreads>>>(chunked, k, args, report);
      }
      RLFT_CUDA_CHECK_LAUNCH();
      continue;
    }
    // x blocks sized for the largest tensor (capped; the loop covers the rest), y = tensors.
    const dim3 grid(cuda_detail::blocks_for(largest), unsigned(k));
    if (type == Type::f32) {
      adam_kernel<float><<<grid, cuda_detail::kThreads>>>(batch, args, report);
    } else {
      adam_kernel<double><<<grid, cuda_detail::kThreads>>>(batch, args, report);
    }
    RLFT_CUDA_CHECK_LAUNCH();
  }
}

void sgd_step(Type type, int64_t n, void* w, const void* g, void* v, double lr, double momentum,
              double dampening, double weight_decay, bool nesterov, bool first, int device) {
  if (n == 0) return;
  cuda_detail::set_device(device);
  if (type == Type::f32) {
    sgd_kernel<float><<<cuda_detail::blocks_for(n), cuda_detail::kThreads>>>(
        n, static_cast<float*>(w), static_cast<const float*>(g), static_cast<float*>(v), lr,
        momentum, dampening, weight_decay, nesterov, first);
  } else if (type == Type::f64) {
    sgd_kernel<double><<<cuda_detail::blocks_for(n), cuda_detail::kThreads>>>(
        n, static_cast<double*>(w), static_cast<const double*>(g), static_cast<double*>(v), lr,
        momentum, dampening, weight_decay, nesterov, first);
  } else {
    throw Error("cuda sgd_step: expected a floating element type");
  }
  RLFT_CUDA_CHECK_LAUNCH();
}

}  // namespace rlft::kernels::cuda_ops
