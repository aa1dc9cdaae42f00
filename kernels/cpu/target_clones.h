// RLFT_CLONES: compile a float loop three times (AVX-512, AVX2, the portable SSE2 baseline) and
// pick the clone for the running CPU when the program loads (GCC's target_clones). Every file
// using it is compiled with -ffp-contract=off (CMakeLists.txt), so no clone contracts a·b + c
// into a fused multiply-add: all three round exactly like the portable code, and a result does
// not depend on the machine. Clang 14 and other compilers get the portable loop only.
#pragma once

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define RLFT_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define RLFT_CLONES
#endif
