#!/usr/bin/env bash
# Prints the `cargo test` filter arguments that skip the tests of kernels this CPU cannot run,
# and says on stderr which and why. Tests of the engine's 512-bit kernels are named
# `*_needs_avx512`, those of its VAES AES-GCM `*_needs_vaes`, those of its AES-CBC + HMAC-SHA1
# batches with the SHA extensions `*_needs_shani` (a test may need two sets); each fails, not passes, when run
# where its instructions are missing, and the engine's test
# `the_engine_takes_each_kernel_only_where_the_cpu_runs_it` checks there that the library's code
# is used instead. The flags are the ones the kernels' `is_x86_feature_detected!` checks ask for.
set -euo pipefail
flags=" $(grep -m1 '^flags' /proc/cpuinfo | cut -d: -f2) "
missing() {
  local f out=""
  for f in "$@"; do
    case "$flags" in *" $f "*) ;; *) out+=" $f" ;; esac
  done
  echo "${out# }"
}
vaes=$(missing aes pclmulqdq avx2 vaes vpclmulqdq)
avx512=$(missing aes pclmulqdq avx2 vaes vpclmulqdq avx512f avx512bw avx512vl)
shani=$(missing aes pclmulqdq avx2 vaes vpclmulqdq sha_ni ssse3 sse4_1)
args=""
if [ -n "$vaes" ]; then
  echo "cpu-test-skips: SKIPPED the *_needs_vaes tests: this CPU lacks $vaes" >&2
  args+=" --skip _needs_vaes"
fi
if [ -n "$avx512" ]; then
  echo "cpu-test-skips: SKIPPED the *_needs_avx512 tests: this CPU lacks $avx512" >&2
  args+=" --skip _needs_avx512"
fi
if [ -n "$shani" ]; then
  echo "cpu-test-skips: SKIPPED the *_needs_shani tests: this CPU lacks $shani" >&2
  args+=" --skip _needs_shani"
fi
echo "${args# }"
