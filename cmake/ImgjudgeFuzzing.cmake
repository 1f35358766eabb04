# IMGJUDGE_BUILD_FUZZERS=ON: instruments EVERY target of this build for
# libFuzzer (coverage) plus ASan+UBSan, so the library code under test is
# instrumented, not just the harnesses in tests/fuzz. Use a build dir of its
# own (scripts/fuzz.sh uses build-fuzz) and build only the fuzz_* targets:
# the libtorch parts are not meant to be built this way.
if(NOT CMAKE_CXX_COMPILER_ID MATCHES "Clang")
  message(FATAL_ERROR "IMGJUDGE_BUILD_FUZZERS needs clang (libFuzzer): configure with "
                      "-DCMAKE_C_COMPILER=clang-14 -DCMAKE_CXX_COMPILER=clang++-14 "
                      "(Debian packages clang-14 libclang-rt-14-dev, scripts/install-fuzz-deps.sh)")
endif()
# fuzzer-no-link: coverage instrumentation without libFuzzer's main(); the
# fuzz_* executables link -fsanitize=fuzzer themselves (tests/fuzz).
# -fno-sanitize-recover: any UBSan finding aborts, so libFuzzer records it as a crash.
add_compile_options(-fsanitize=fuzzer-no-link,address,undefined
                    -fno-sanitize-recover=all -fno-omit-frame-pointer -g
                    -Wno-unknown-warning-option)  # clang lacks gcc's -Wshadow=local
add_link_options(-fsanitize=address,undefined)
