#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/fuzz_<name>.c) with clang, ASan and UBSan, and runs each
# for ${FUZZ_SECONDS:-60} seconds on a copy of its seed corpus (fuzz/corpus/<name>/):
#   scripts/fuzz.sh                 every target
#   scripts/fuzz.sh normalize       only fuzz/fuzz_normalize.c
# The build lives in ${FUZZ_BUILD:-build-fuzz}; new corpus entries and crash reproducers stay
# there (corpus-<name>/, artifacts/), never in the repository. Any crash, sanitizer report or
# broken contract fails the script. Not part of CTest: fuzzing takes minutes.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${FUZZ_BUILD:-$root/build-fuzz}
seconds=${FUZZ_SECONDS:-60}
jobs=$(nproc)

command -v clang >/dev/null || { echo "fuzz.sh: clang is required (scripts/deps.sh)" >&2; exit 1; }

sanitize="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
deps="libcurl sqlite3 libmicrohttpd jansson ck rdkafka libcrypto libssl"
# shellcheck disable=SC2086
cflags="-std=c11 -D_GNU_SOURCE -g -O1 $sanitize -I$root/src -I$build/generated $(pkg-config --cflags $deps)"
# shellcheck disable=SC2086
libs="$(pkg-config --libs $deps) -lpaho-mqtt3as -lpthread -lm"

# The library, instrumented for coverage without libFuzzer's main(). Compiled here rather than
# through CMake: the project's -Werror is tuned for gcc, and clang's extra warnings in code the
# fuzzers do not even reach must not stop a fuzzing run (the regular build checks warnings).
mkdir -p "$build/generated" "$build/obj"
version=$(sed -n 's/^project(ilagent VERSION \([0-9.]*\).*/\1/p' "$root/CMakeLists.txt")
sed "s/@PROJECT_VERSION@/$version/" "$root/src/core/version.h.in" >"$build/generated/version.h.new"
cmp -s "$build/generated/version.h.new" "$build/generated/version.h" ||
  mv "$build/generated/version.h.new" "$build/generated/version.h"
rm -f "$build/generated/version.h.new"
# Objects carry no header dependencies: any newer header rebuilds them all.
stamp="$build/obj/.stamp"
if [ -f "$stamp" ] && [ -n "$(find "$root/src" "$build/generated" -name '*.h' -newer "$stamp" -print -quit)" ]; then
  rm -f "$build"/obj/*.o
fi
touch "$stamp.new"
obj_of() { echo "$build/obj/$(echo "$1" | md5sum | cut -c1-16).o"; }
export -f obj_of
export cflags build
find "$root/src" -name '*.c' ! -path "$root/src/main.c" -print0 |
  xargs -0 -n1 -P"$jobs" bash -c '
    obj=$(obj_of "$1")
    if [ ! -f "$obj" ] || [ "$1" -nt "$obj" ]; then
      clang $cflags -w -fsanitize=fuzzer-no-link -c "$1" -o "$obj" || exit 255
    fi' _
mv "$stamp.new" "$stamp"
rm -f "$build/libilagent_fuzz.a"
# Only the objects of the current sources: those of deleted files must not linger.
find "$root/src" -name '*.c' ! -path "$root/src/main.c" | while read -r f; do obj_of "$f"; done |
  xargs ar rcs "$build/libilagent_fuzz.a"

targets=()
if [ $# -gt 0 ]; then
  for name in "$@"; do targets+=("$root/fuzz/fuzz_${name}.c"); done
else
  targets=("$root"/fuzz/fuzz_*.c)
fi

mkdir -p "$build/artifacts"
failed=0
for src in "${targets[@]}"; do
  [ -f "$src" ] || { echo "fuzz.sh: no such target: $src" >&2; exit 1; }
  name=$(basename "$src" .c)
  name=${name#fuzz_}
  bin="$build/fuzz_$name"
  echo "== building fuzz_$name =="
  # shellcheck disable=SC2086
  clang $cflags -Wall -Wextra -Werror -fsanitize=fuzzer "$src" "$build/libilagent_fuzz.a" \
    $libs -o "$bin"

  corpus="$build/corpus-$name"
  mkdir -p "$corpus"
  seeds="$root/fuzz/corpus/$name"
  [ -d "$seeds" ] && cp -n "$seeds"/* "$corpus"/ 2>/dev/null || true
  echo "== running fuzz_$name for ${seconds}s =="
  if ! ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    "$bin" -max_total_time="$seconds" -max_len=8192 -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$build/artifacts/$name-" "$corpus"; then
    echo "fuzz_$name FAILED (reproducers in $build/artifacts/)" >&2
    failed=1
  fi
done
exit $failed
