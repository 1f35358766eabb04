#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz (clang 14, ASan+UBSan, build dir
# build-fuzz) and runs each for a bounded time on its seed corpus.
# Fails if any target crashes, leaks, times out or breaks its contract; prints
# the executions per target. See docs/testing.md.
#
#   scripts/fuzz.sh                    # every target, FUZZ_SECONDS=30 each
#   FUZZ_SECONDS=300 scripts/fuzz.sh image_decode safetensors
#
# Environment: FUZZ_SECONDS (per target, default 30), FUZZ_JOBS (targets run at
# once, default nproc), FUZZ_BUILD_DIR (default build-fuzz).
# The committed seeds (tests/fuzz/corpus/<target>) are read, never written: new
# inputs go to $FUZZ_BUILD_DIR/fuzz-corpus/<target>, crash inputs to
# $FUZZ_BUILD_DIR/fuzz-artifacts/ (commit one under tests/data/hostile/ with a
# regression test when you fix what it found).
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${FUZZ_SECONDS:-30}
jobs=${FUZZ_JOBS:-$(nproc)}
build=${FUZZ_BUILD_DIR:-build-fuzz}
all_targets=(image_decode image_jpeg_exif constitution safetensors hf_config tokenizer_json reasoning
             capi_constitution capi_judge_bytes)
if (($# > 0)); then targets=("$@"); else targets=("${all_targets[@]}"); fi

if ! command -v clang++-14 >/dev/null; then
  echo "fuzz: clang++-14 not found; run scripts/install-fuzz-deps.sh" >&2
  exit 2
fi

started=$SECONDS
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_C_COMPILER=clang-14 -DCMAKE_CXX_COMPILER=clang++-14 \
  -DIMGJUDGE_BUILD_FUZZERS=ON -DIMGJUDGE_BUILD_EXAMPLES=OFF >/dev/null
cmake --build "$build" -j"$(nproc)" --target $(printf 'fuzz_%s ' "${targets[@]}")
echo "fuzz: built in $((SECONDS - started)) s; running ${#targets[@]} targets for ${seconds} s each, ${jobs} at a time"

logs="$build/fuzz-logs"
mkdir -p "$logs" "$build/fuzz-artifacts"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:symbolize=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

# Targets that read JSON get a dictionary of its structure and the keys model
# folders use, and inputs up to 256 KiB: deep nesting and huge value lists
# (which once overflowed the stack and took gigabytes) are within reach.
json_options() {
  case $1 in
    hf_config | tokenizer_json | safetensors | reasoning) echo "-dict=tests/fuzz/dict/json.dict -max_len=262144" ;;
  esac
}

run_target() {
  local name=$1
  local work="$build/fuzz-corpus/$name"
  mkdir -p "$work"
  # -timeout: one input taking over 10 s is a hang; -rss_limit_mb: unbounded memory is a bug.
  # shellcheck disable=SC2046 # json_options is a list of options
  "$build/tests/fuzz/fuzz_$name" $(json_options "$name") -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$build/fuzz-artifacts/$name-" \
    "$work" "tests/fuzz/corpus/$name/" >"$logs/$name.log" 2>&1
}

declare -A status
running=0
for name in "${targets[@]}"; do
  run_target "$name" && echo 0 >"$logs/$name.rc" || echo $? >"$logs/$name.rc" &
  running=$((running + 1))
  if ((running >= jobs)); then wait -n || true; running=$((running - 1)); fi
done
wait

failed=0
printf '%-20s %12s %10s %8s  %s\n' target executions exec/s corpus result
for name in "${targets[@]}"; do
  rc=$(cat "$logs/$name.rc")
  log="$logs/$name.log"
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  corpus=$(ls "$build/fuzz-corpus/$name" | wc -l)
  if [[ $rc == 0 ]]; then result=ok; else result="FAILED (exit $rc, log $log)"; failed=1; fi
  printf '%-20s %12s %10s %8s  %s\n' "$name" "${execs:-?}" "${speed:-?}" "$corpus" "$result"
done
if ((failed)); then
  for name in "${targets[@]}"; do
    if [[ $(cat "$logs/$name.rc") != 0 ]]; then
      echo "---- $name ($logs/$name.log) ----"
      grep -E "ERROR|CONTRACT|runtime error|SUMMARY|Test unit written" "$logs/$name.log" | head -20
    fi
  done
  echo "fuzz: FAILED; reproduce with $build/tests/fuzz/fuzz_<target> <artifact>" >&2
  exit 1
fi
echo "fuzz: all ${#targets[@]} targets ran ${seconds} s without a crash ($((SECONDS - started)) s in all)"
