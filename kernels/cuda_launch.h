// The launch shape of a CUDA row kernel, for benchmarks that sweep it and tests that pin it.
// Every field 0 means "the dispatcher's choice" (each kernel's manual says what that is), so
// callers other than sweeps pass nothing. Header-only, host side, no CUDA headers needed.
#pragma once

#include "engine/error.h"

namespace rlft::kernels {

struct CudaLaunch {
  int block = 0;   // threads per block: 0, or a power of two in [32, 512]
  int unroll = 0;  // loads issued together per thread before any is used: 0, 1, 2, 4 or 8
  int vec = 0;     // 0: 16-byte vector loads where the data allows them; 1: scalar loads only
  int version = 0;  // a kernel with several versions behind one call (ratio_clip): 0 = default
  // ratio_clip's token-level layout: 0 = default (a block per row); 1 = rows in chunks of a
  // block each; 2 = flat (token_mean: the [B, T] tokens as one sequence cut into one chunk per
  // resident block, a persistent grid); 3 = bulk (flat's tokens in chunks copied into shared
  // memory by the tensor memory accelerator, sm_90+)
  int chunked = 0;
  // 1: a kernel that follows another is launched the ordinary way, after it has finished;
  // 0 (default): programmatically dependent where the GPU allows it (sm_90+: its launch
  // overlaps the first kernel's end). Used by ratio_clip's finishing kernel.
  int serial = 0;
  // 1: the op's FIRST kernel is itself launched programmatically dependent on whatever
  // precedes it on the stream (sm_90+: its blocks are scheduled while that one ends and wait
  // for it in-kernel before their first load); 0 (default): the ordinary way. Used by
  // ratio_clip's forward.
  int dependent = 0;
};

// Throws rlft::Error naming `op` and the bad field.
inline void check_launch(const char* op, const CudaLaunch& l) {
  const bool pow2 = l.block > 0 && (l.block & (l.block - 1)) == 0;
  RLFT_CHECK(l.block == 0 || (pow2 && l.block >= 32 && l.block <= 512), op,
             ": launch.block must be 0 or a power of two in [32, 512], got ", l.block);
  RLFT_CHECK(l.unroll == 0 || l.unroll == 1 || l.unroll == 2 || l.unroll == 4 || l.unroll == 8, op,
             ": launch.unroll must be 0, 1, 2, 4 or 8, got ", l.unroll);
  RLFT_CHECK(l.vec == 0 || l.vec == 1, op, ": launch.vec must be 0 or 1, got ", l.vec);
  RLFT_CHECK(l.version >= 0, op, ": launch.version must be >= 0, got ", l.version);
  RLFT_CHECK(l.chunked >= 0 && l.chunked <= 3, op, ": launch.chunked must be 0, 1, 2 or 3, got ",
             l.chunked);
  RLFT_CHECK(l.serial == 0 || l.serial == 1, op, ": launch.serial must be 0 or 1, got ", l.serial);
  RLFT_CHECK(l.dependent == 0 || l.dependent == 1, op, ": launch.dependent must be 0 or 1, got ",
             l.dependent);
}

}  // namespace rlft::kernels
