#!/bin/sh
# Installs imgjudge from a build tree into a temporary prefix, moves that tree
# elsewhere (it must be relocatable), then builds and runs two consumers
# against it: one with CMake's find_package(imgjudge), one with pkg-config.
# It also checks that no private dependency (libtorch, fmt, toml++) leaks
# into what consumers are told to compile with.
#
#   examples/consumer/run.sh [BUILD_DIR]    (default: build)
set -eu

here=$(cd "$(dirname "$0")" && pwd)
source_dir=$(cd "$here/../.." && pwd)
build_dir=$(cd "${1:-$source_dir/build}" && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/imgjudge-consumer.XXXXXX")
trap 'rm -rf "$work"' EXIT

echo "== install $build_dir -> $work/staging"
cmake --install "$build_dir" --prefix "$work/staging" >"$work/install.log"
mv "$work/staging" "$work/prefix"   # relocated: nothing may point at the staging path
prefix="$work/prefix"
pc_file=$(find "$prefix" -name imgjudge.pc)
config_file=$(find "$prefix" -name imgjudgeConfig.cmake)
[ -n "$pc_file" ] && [ -n "$config_file" ] || { echo "FAIL: imgjudge.pc or imgjudgeConfig.cmake not installed" >&2; exit 1; }

echo "== private dependencies must not leak"
if grep -rIl -E 'torch|fmt::|tomlplusplus|staging' "$(dirname "$config_file")" "$pc_file"; then
  echo "FAIL: the files above mention a private dependency or the staging path" >&2
  exit 1
fi
if grep -rl -E '#include *<(torch|ATen|fmt|toml)' "$prefix/include"; then
  echo "FAIL: installed headers include a private dependency" >&2
  exit 1
fi

script="$source_dir/examples/demo/scripted-answers.toml"
image="$source_dir/examples/images/chelsea.png"

echo "== find_package(imgjudge)"
cmake -S "$here/cmake" -B "$work/build-cmake" -G Ninja -DCMAKE_BUILD_TYPE=Release \
      -DCMAKE_PREFIX_PATH="$prefix" >"$work/configure.log"
cmake --build "$work/build-cmake" >"$work/build.log"
"$work/build-cmake/consumer_c" "$script" "$image"
"$work/build-cmake/consumer_cpp" "$script" "$image"
# An error crosses the library boundary as imgjudge::Error (exported type info).
if "$work/build-cmake/consumer_cpp" "$script" /nonexistent.png 2>"$work/err.txt"; then
  echo "FAIL: a missing image was not an error" >&2
  exit 1
fi
grep -q 'consumer_cpp: error \[io\]' "$work/err.txt" || { cat "$work/err.txt" >&2; exit 1; }

echo "== pkg-config imgjudge"
export PKG_CONFIG_PATH="$(dirname "$pc_file")"
echo "cflags: $(pkg-config --cflags imgjudge)  libs: $(pkg-config --libs imgjudge)"
mkdir -p "$work/build-pc"
make -s -C "$here/pkgconfig" OUT="$work/build-pc"
"$work/build-pc/consumer_c" "$script" "$image"

echo "consumer: OK"
