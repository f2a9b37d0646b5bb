#!/usr/bin/env bash
# Keeps the tutorial's reference solutions (docs/solutions/*.patch) from rotting: copies the tree,
# applies the patches in order, builds the patched programs and the tests the patches touch,
# and runs docs/solutions/check.sh for each exercise and those tests against them. Given the
# unmodified mrd and mrctl, it also runs each check against them and requires it to fail, so
# that a check that passes anything is caught too.
#
#   scripts/check-solutions.sh [UNMODIFIED_MRD UNMODIFIED_MRCTL]
#
# The copy holds every file git knows or would add (committed, changed or new, not ignored) and
# is built in a directory of its own, unoptimised and without debug info (the fastest build), so
# nothing of this tree or its build/ is touched. Extra CMake arguments: $CHECK_SOLUTIONS_CMAKE_ARGS.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ $# -ne 0 && $# -ne 2 ]]; then
  echo "usage: $0 [UNMODIFIED_MRD UNMODIFIED_MRCTL]" >&2
  exit 2
fi
unmodified=()
for program in "$@"; do
  [[ -x $program ]] || { echo "solutions: $program is not an executable program" >&2; exit 2; }
  unmodified+=("$(realpath "$program")")
done

# The patched tests must start the patched programs, not ones named in the environment.
unset MRD_BINARY MRCTL_BINARY
patches=(a-ping b-chars d-connection-stats)
exercises=(a b d)
start=$SECONDS
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tree=$work/tree
mkdir "$tree"

echo "solutions: copying the tree to $tree"
git ls-files -z --cached --others --exclude-standard |
  while IFS= read -r -d '' file; do [[ -e $file ]] && printf '%s\0' "$file"; done |
  tar --null -T - -cf - | tar -xf - -C "$tree"

# git apply outside a repository applies to the current directory, like patch -p1; the ceiling
# keeps git from taking a repository above the temporary directory for the copy's own.
applied=()
for patch in "${patches[@]}"; do
  if ! (cd "$tree" && GIT_CEILING_DIRECTORIES=$work git apply "docs/solutions/$patch.patch"); then
    echo "solutions: docs/solutions/$patch.patch no longer applies to this tree" \
      "(after ${applied[*]:-no other patch}); remake it (docs/solutions/README.md)" >&2
    exit 1
  fi
  applied+=("$patch.patch")
done
echo "solutions: applied ${applied[*]}"

echo "solutions: building the patched mrd, mrctl and the tests the patches change"
# -O0 -g0 and a unity build: the quickest build; the checks and these tests need no speed.
# Without the benchmarks.
# shellcheck disable=SC2086  # the extra arguments are split on purpose
cmake -S "$tree" -B "$tree/build" -DCMAKE_BUILD_TYPE=Debug "-DCMAKE_CXX_FLAGS_DEBUG=-O0 -g0" \
  -DMRD_BENCH=OFF -DCMAKE_UNITY_BUILD=ON ${CHECK_SOLUTIONS_CMAKE_ARGS:-} >/dev/null
cmake --build "$tree/build" -j "$(nproc)" --target mrd mrctl codec_test server_test engine_test \
  lifecycle_test docs_test frame_parser_fuzz_replay >"$work/build.log" 2>&1 ||
  { tail -n 60 "$work/build.log" >&2; echo "solutions: the patched tree does not build" >&2; exit 1; }
if grep -q 'warning:' "$work/build.log"; then
  grep -A5 'warning:' "$work/build.log" >&2
  echo "solutions: the patched tree builds with warnings" >&2
  exit 1
fi
build_seconds=$((SECONDS - start))
mrd=$tree/build/server/mrd
mrctl=$tree/build/client/mrctl

for exercise in "${exercises[@]}"; do
  bash "$tree/docs/solutions/check.sh" "$exercise" "$mrd" "$mrctl"
done

# Runs one test program (NAME, then the command); shows its output only if it fails.
run_test() {
  local name=$1
  shift
  if ! "$@" >"$work/test.log" 2>&1; then
    cat "$work/test.log" >&2
    echo "solutions: $name FAILED" >&2
    exit 1
  fi
  echo "solutions: $name: passed"
}
tests=$tree/build/tests
run_test "codec_test (Wire)" "$tests/codec_test" --gtest_filter='Wire.*'
run_test "server_test (PING, unknown opcodes)" "$tests/server_test" \
  --gtest_filter='Server.PingEchoesItsBody:Server.Unknown*'
run_test "engine_test" "$tests/engine_test"
run_test "lifecycle_test (Logs)" "$tests/lifecycle_test" --gtest_filter='Logs.*'
run_test "docs_test" "$tests/docs_test"
run_test "the frame parser's fuzz corpus" "$tests/frame_parser_fuzz_replay" \
  "$tree/tests/fuzz/corpus/frame_parser_fuzz"
run_test "the recipes of protocol.md" bash "$tree/tests/netcat_test.sh" "$mrd" \
  "$tree/docs/protocol.md"
run_test "the Python client's examples, recipes and opcodes" env -C "$tree/client/python" \
  MRD_BINARY="$mrd" MRD_PROTOCOL_DOC="$tree/docs/protocol.md" PYTHONDONTWRITEBYTECODE=1 \
  python3 -m unittest test_mrd_client.TestDocumentExamples test_mrd_client.TestDocumentRecipes \
  test_mrd_client.TestOpcodes

# Each check must also be able to fail: against the programs without the solutions, it must.
if [[ ${#unmodified[@]} -eq 2 ]]; then
  for exercise in "${exercises[@]}"; do
    status=0
    bash "$tree/docs/solutions/check.sh" "$exercise" "${unmodified[@]}" >/dev/null 2>&1 ||
      status=$?
    if [[ $status -ne 1 ]]; then
      echo "solutions: check.sh $exercise exits $status against the unmodified ${unmodified[0]}" \
        "(and mrctl); it must fail (1) there" >&2
      exit 1
    fi
    echo "exercise ($exercise): fails, as it must, without its solution"
  done
fi
echo "solutions: ok in $((SECONDS - start)) s (building: $build_seconds s)"
