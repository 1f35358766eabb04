#!/usr/bin/env bash
# Sanitizer runs (docs/testing.md):
#   asan  ASan+UBSan (g++, Debug, build-asan): the torch-free unit tests and the
#         C API tests (libimgjudge, so libtorch parts are built instrumented too;
#         libtorch itself is not instrumented: an ASan run over it reports nothing).
#   tsan  ThreadSanitizer (g++, build-tsan): the unit tests' concurrency and
#         Judge tests ([concurrency] and [judge]), no libtorch involved.
#
#   scripts/sanitize.sh            # both
#   scripts/sanitize.sh tsan       # one
#
# Any sanitizer report fails the run (halt_on_error, and ASan/LSan/TSan exit codes).
set -euo pipefail
cd "$(dirname "$0")/.."

modes=("$@")
if ((${#modes[@]} == 0)); then modes=(asan tsan); fi
jobs=${SANITIZE_JOBS:-$(nproc)}

configure() {  # configure <build dir> <sanitizer flags>
  local dir=$1 flags=$2
  cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Debug \
    -DCMAKE_C_COMPILER=gcc -DCMAKE_CXX_COMPILER=g++ \
    -DCMAKE_C_FLAGS="$flags" -DCMAKE_CXX_FLAGS="$flags" \
    -DCMAKE_EXE_LINKER_FLAGS="$flags" -DCMAKE_SHARED_LINKER_FLAGS="$flags" \
    -DIMGJUDGE_BUILD_EXAMPLES=OFF >/dev/null
}

for mode in "${modes[@]}"; do
  started=$SECONDS
  case $mode in
    asan)
      configure build-asan "-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined -O1"
      cmake --build build-asan -j"$jobs" --target imgjudge_unit_tests imgjudge_capi_tests imgjudge_capi_header_test
      echo "sanitize: asan build took $((SECONDS - started)) s"
      LSAN_OPTIONS=suppressions=$PWD/tests/lsan.supp \
      ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1 \
      UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
        ctest --test-dir build-asan --output-on-failure -L "unit|capi" -j"$jobs"
      ;;
    tsan)
      configure build-tsan "-fsanitize=thread -fno-omit-frame-pointer -O1"
      cmake --build build-tsan -j"$jobs" --target imgjudge_unit_tests
      echo "sanitize: tsan build took $((SECONDS - started)) s"
      TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
        build-tsan/tests/imgjudge_unit_tests "[concurrency],[judge]"
      ;;
    *)
      echo "sanitize: unknown mode '$mode' (asan, tsan)" >&2
      exit 2
      ;;
  esac
  echo "sanitize: $mode passed in $((SECONDS - started)) s"
done
