#!/usr/bin/env bash
# One mutant: apply a Perl substitution to one source file, rebuild one test binary, run a gtest
# filter, restore the file, and say whether the mutant was killed (some test failed) or survived.
#
#   scripts/mutate.sh ID FILE 'PERL-SUBSTITUTION' TARGET 'GTEST-FILTER'
#   scripts/mutate.sh K02 kernels/cpu/gae.cpp 's/gamma \* lambda/gamma/' test_kernels 'Gae*'
#
# Run it in a separate worktree (git worktree add /tmp/mut HEAD), never in one with work in
# progress: it refuses a FILE with uncommitted changes, and restores FILE with git checkout.
# Environment: MUT_BUILD (build directory, default build-mut: configure it once with
# -DRLFT_CUDA=OFF -DRLFT_BUILD_BENCH=OFF), MUT_LOGS (default /tmp/mutants: ID.diff, ID.build,
# ID.test). How the campaign of 2026-11-26 went: docs/testing.md.
set -uo pipefail
[ $# -eq 5 ] || { sed -n '2,12p' "$0"; exit 2; }
id=$1 file=$2 subst=$3 target=$4 filter=$5
build=${MUT_BUILD:-build-mut} logs=${MUT_LOGS:-/tmp/mutants}
mkdir -p "$logs"
git diff --quiet -- "$file" || { echo "$id: $file has uncommitted changes; not touching it"; exit 2; }
perl -0pi -e "$subst" "$file"
if git diff --quiet -- "$file"; then echo "$id NO-CHANGE (the substitution matched nothing)"; exit 1; fi
git diff -U0 -- "$file" | grep '^[-+][^-+]' > "$logs/$id.diff"
if ! cmake --build "$build" -j2 --target "$target" > "$logs/$id.build" 2>&1; then
  git checkout -- "$file"
  echo "$id BUILD-FAILED (see $logs/$id.build)"
  exit 1
fi
timeout 900 "$build/$target" --gtest_filter="$filter" > "$logs/$id.test" 2>&1
rc=$?
git checkout -- "$file"
if [ $rc -ne 0 ]; then
  echo "$id KILLED by $(grep -E '^\[  FAILED  \] [A-Za-z]' "$logs/$id.test" | sed 's/^\[  FAILED  \] //; s/ (.*//' | sort -u | tr '\n' ' ')"
else
  echo "$id SURVIVED ($(grep -E '^\[  PASSED  \]' "$logs/$id.test"))"
fi
cat "$logs/$id.diff"
