#!/usr/bin/env bash
# Runs every command block of a guide that is marked runnable, in order, in one shell, as a reader
# who follows it from the start would: a block must succeed, and a block marked
# '<!-- runnable: output -->' must print exactly the ``` block that follows it.
#
# Usage: tutorial_commands_test.sh SOURCE_DIR BUILD_DIR [GUIDE]   (GUIDE: docs/tutorial.md)
# The blocks run in a fresh directory where `build/` is BUILD_DIR and every other top-level entry
# of the source tree is at hand (`protocol/wireshark/mrd.lua`, `scripts/`...), as in a checkout.
set -euo pipefail
source_dir=$(cd "$1" && pwd)
build_dir=$(cd "$2" && pwd)
guide=${3:-docs/tutorial.md}
work=$(mktemp -d)
trap 'cleanup' EXIT
cleanup() {
  # The guide starts servers in the background and stops them itself; if a block failed first,
  # stop what the session started (its own children only) before removing its directory.
  [[ -s $work/pids ]] && xargs -r kill 2>/dev/null < "$work/pids" || true
  sleep 0.2
  rm -rf "$work"
}

mkdir "$work/tree"
for entry in "$source_dir"/* "$source_dir"/.ci; do
  [[ $(basename "$entry") == build ]] || ln -s "$entry" "$work/tree/$(basename "$entry")"
done
ln -s "$build_dir" "$work/tree/build"

# Cut the guide into numbered blocks: N.cmd (the commands), N.want (the output, when checked).
awk -v dir="$work" '
  /^<!-- runnable -->$/ { n++; state = "want-cmd"; check = 0; next }
  /^<!-- runnable: output -->$/ { n++; state = "want-cmd"; check = 1; next }
  state == "want-cmd" && /^```sh$/ { state = "cmd"; printf "%d\n", NR > (dir "/" n ".line"); next }
  state == "cmd" && /^```$/ { state = check ? "want-out" : ""; next }
  state == "cmd" { print > (dir "/" n ".cmd"); next }
  state == "want-out" && /^```$/ { state = "out"; printf "" > (dir "/" n ".want"); next }
  state == "out" && /^```$/ { state = ""; next }
  state == "out" { print > (dir "/" n ".want"); next }
' "$source_dir/$guide"
blocks=$(ls "$work"/*.cmd 2>/dev/null | wc -l)
if [[ $blocks -eq 0 ]]; then
  echo "FAIL: $guide has no block marked runnable"
  exit 1
fi

# One shell runs every block, so that variables ($server, $port) carry over as they do for a
# reader. Each block's output goes to its own file; the shell reports each block's exit status.
driver=$work/driver.sh
{
  echo 'cd "$1"'
  # However the shell ends (a block that fails ends it), the background programs it started are
  # remembered, so that cleanup stops them.
  echo "trap 'jobs -p >> \"$work/pids\"' EXIT"
  for ((i = 1; i <= blocks; i++)); do
    echo "exec > '$work/$i.out' 2>&1"
    # As in a reader's shell, a pipeline's status is its last command's (no pipefail): the
    # trickling sender of section 2 dies of SIGPIPE by design.
    echo "set -e"
    echo "{"
    cat "$work/$i.cmd"
    echo "} ; echo \$? > '$work/$i.status'"
    echo "set +e"
  done
} > "$driver"

# set -e would end the shell at the first failing command of a block; the status file then stays
# missing, which is how a failure is found and named below.
bash "$driver" "$work/tree" || true

failed=0
for ((i = 1; i <= blocks; i++)); do
  line=$(cat "$work/$i.line")
  if [[ ! -f $work/$i.status || $(cat "$work/$i.status") != 0 ]]; then
    echo "FAIL: the block at $guide:$line did not succeed. It ran:"
    sed 's/^/    /' "$work/$i.cmd"
    echo "  and printed:"
    sed 's/^/    /' "$work/$i.out"
    failed=1
    break
  fi
  if [[ -f $work/$i.want ]] && ! diff -u "$work/$i.want" "$work/$i.out" > "$work/$i.diff"; then
    echo "FAIL: the block at $guide:$line printed something else than the guide shows:"
    sed 's/^/    /' "$work/$i.diff"
    failed=1
  fi
done
[[ $failed -eq 0 ]] && echo "ok: $blocks blocks of $guide ran as written"
exit $failed
