#!/usr/bin/env bash
# The Python client as a package: `pip install client/python` in a fresh virtual environment,
# without network access, must give an importable mrd_client (from the venv, not the source
# directory) and a working `mrctl-py` command. With an mrd binary, mrctl-py also runs a word count
# on a real server and its counts are checked against a text whose counts are known.
# Installs from a copy of client/python, so the source tree gets no build/ or *.egg-info.
# Needs Debian's python3, python3-venv and python3-wheel (ensurepip gives the venv pip and
# setuptools; wheel supplies setuptools' bdist_wheel, seen through --system-site-packages).
# Usage: python_package_test.sh [CLIENT_DIR [MRD_BINARY]]   (MRD_BINARY may also come from the
# environment; PYTHON=/path/to/python3 overrides /usr/bin/python3; KEEP_WORK=1 keeps the files)
set -euo pipefail
export LC_ALL=C

fail() { echo "python_package_test: FAILED: $*" >&2; exit 1; }
ok() { echo "python_package_test: ok: $*"; }
# running PID: the process has not exited (a zombie, not yet waited for, has). Any state letter
# but Z counts, lowercase too: a sanitized mrd's leak check, at exit, stops it for tracing (t).
running() {
  local state
  state=$(sed -n 's/^State:[[:space:]]*\([A-Za-z]\).*/\1/p' "/proc/$1/status" 2>/dev/null || true)
  [[ -n $state && $state != Z ]]
}

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
client_dir=${1:-$script_dir/../client/python}
mrd=${2:-${MRD_BINARY:-}}
python=${PYTHON:-/usr/bin/python3}  # Debian's, not whatever python3 comes first in PATH

[[ -f $client_dir/pyproject.toml ]] || fail "no pyproject.toml in $client_dir"
client_dir=$(cd "$client_dir" && pwd)
[[ -x $python ]] || fail "no python at $python"
if [[ -n $mrd ]]; then
  [[ -x $mrd ]] || fail "mrd binary $mrd is not executable"
  mrd=$(cd "$(dirname "$mrd")" && pwd)/$(basename "$mrd")
fi

work=$(mktemp -d)
server=
cleanup() {  # stops the mrd started here (by its PID), if it still runs: SIGTERM, then SIGKILL
  if [[ -n $server ]]; then
    kill "$server" 2>/dev/null || true
    for _ in $(seq 100); do running "$server" || break; sleep 0.05; done
    kill -KILL "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
  fi
  if [[ -n ${KEEP_WORK:-} ]]; then echo "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
cd "$work"

# Nothing from the caller's environment may decide what gets imported or where pip looks.
unset PYTHONPATH PYTHONHOME PYTHONSTARTUP PYTHONUSERBASE VIRTUAL_ENV
unset "${!PIP_@}"
export PYTHONNOUSERSITE=1 PIP_CONFIG_FILE=/dev/null PIP_DISABLE_PIP_VERSION_CHECK=1
export HOME=$work/home  # pip's cache and config, and ~/.local, stay in here
mkdir "$HOME"

artifacts() {  # what a build in $client_dir would leave there, one name a line
  local path
  for path in "$client_dir/build" "$client_dir/dist" "$client_dir"/*.egg-info; do
    [[ -e $path ]] && echo "${path##*/}"
  done
  return 0
}
artifacts_before=$(artifacts)

# --- install from a clean copy of the client directory ---
cp -R "$client_dir/." "$work/source"
rm -rf "$work/source/build" "$work/source/dist" "$work/source/__pycache__" "$work"/source/*.egg-info
"$python" -m venv --system-site-packages "$work/venv" >"$work/venv.log" 2>&1 \
  || { cat "$work/venv.log" >&2; fail "$python -m venv (is python3-venv installed?)"; }
venv=$work/venv
"$venv/bin/pip" install --no-index --no-build-isolation --no-deps --no-cache-dir "$work/source" \
  >"$work/pip.log" 2>&1 \
  || { cat "$work/pip.log" >&2; fail "pip install (is python3-wheel installed?)"; }
ok "pip install --no-index --no-build-isolation --no-deps (no network)"

[[ $(artifacts) == "$artifacts_before" ]] \
  || fail "the install left build files in $client_dir: $(artifacts | tr '\n' ' ')"
ok "$client_dir unchanged (no build/, no *.egg-info)"

# --- the modules come from the venv's site-packages, and nothing else was installed ---
version=
if [[ -f $client_dir/../../CMakeLists.txt ]]; then
  version=$(sed -n 's/^project(mrd VERSION \([0-9.]*\).*/\1/p' "$client_dir/../../CMakeLists.txt")
fi
"$venv/bin/python" - "$venv" "$version" <<'EOF' || fail "the installed package (see above)"
import importlib.metadata, importlib.util, os, sys, sysconfig

venv, version = os.path.realpath(sys.argv[1]), sys.argv[2]
site = os.path.realpath(sysconfig.get_paths()["purelib"])
if not site.startswith(venv + os.sep):
    sys.exit(f"purelib {site} is not in the venv {venv}")
import mrd_client, mrctl
for module in (mrd_client, mrctl):
    where = os.path.dirname(os.path.realpath(module.__file__))
    if where != site:
        sys.exit(f"{module.__name__} comes from {where}, not from {site}")
if not callable(mrctl.main):
    sys.exit("mrctl.main is not callable")
if mrd_client.PROTOCOL_VERSION < 1:
    sys.exit(f"odd mrd_client.PROTOCOL_VERSION {mrd_client.PROTOCOL_VERSION}")
if importlib.util.find_spec("test_mrd_client") is not None:
    sys.exit("test_mrd_client is importable: the tests were installed with the package")
dist = importlib.metadata.distribution("mrd-client")
if version and dist.version != version:
    sys.exit(f"mrd-client's version is {dist.version}, the project's (CMakeLists.txt) {version}")
if dist.requires:
    sys.exit(f"mrd-client has dependencies: {dist.requires}")
installed = {os.path.basename(str(f)) for f in dist.files}
for name in ("mrd_client.py", "mrctl.py"):
    if name not in installed:
        sys.exit(f"{name} is not among mrd-client's files")
print(f"python_package_test: ok: mrd_client and mrctl import from {site} "
      f"(mrd-client {dist.version})")
EOF

# --- the command ---
[[ -x $venv/bin/mrctl-py ]] || fail "no mrctl-py in $venv/bin"
code=0
"$venv/bin/mrctl-py" --help >"$work/help.out" 2>"$work/help.err" || code=$?
[[ $code -eq 0 ]] || { cat "$work/help.out" "$work/help.err" >&2; fail "mrctl-py --help exited $code"; }
grep -q '^usage: ' "$work/help.out" || { cat "$work/help.out" >&2; fail "mrctl-py --help: no usage"; }
grep -q 'wordcount' "$work/help.out" || fail "mrctl-py --help does not list wordcount"
ok "mrctl-py --help exits 0 and prints its usage"

code=0
"$venv/bin/mrctl-py" no-such-command >/dev/null 2>&1 || code=$?
[[ $code -eq 2 ]] || fail "mrctl-py no-such-command exited $code, wanted 2 (usage)"
code=0  # main() returns 7 for a file it cannot read (before it connects to any server)
"$venv/bin/mrctl-py" wordcount "$work/no-such-file" >/dev/null 2>"$work/missing.err" || code=$?
[[ $code -eq 7 ]] || { cat "$work/missing.err" >&2; fail "mrctl-py wordcount of a missing file exited $code, wanted 7"; }
grep -q 'no-such-file' "$work/missing.err" || fail "mrctl-py did not name the missing file"
ok "mrctl-py exits with main()'s code (2 for usage, 7 for a missing file)"

if [[ -z $mrd ]]; then
  echo "python_package_test: passed (no mrd binary given: the word count on a server was skipped)"
  exit 0
fi

# --- a word count on a real server through the installed command ---
"$mrd" --listen 127.0.0.1:0 --port-file "$work/port" --workers 2 >"$work/mrd.log" 2>&1 &
server=$!
for _ in $(seq 400); do
  [[ -s $work/port ]] && break
  running "$server" || { cat "$work/mrd.log" >&2; fail "mrd stopped at start-up"; }
  sleep 0.05
done
[[ -s $work/port ]] || { cat "$work/mrd.log" >&2; fail "mrd wrote no port file in 20 s"; }
port=$(<"$work/port")
[[ $port =~ ^[0-9]+$ ]] || fail "port file holds '$port'"

printf 'one two two\nthree three three\n' >"$work/words.txt"
printf '3  three\n2  two\n1  one\n' >"$work/expected"  # counted by hand: 3, 2 and 1
code=0
"$venv/bin/mrctl-py" --server "127.0.0.1:$port" -q wordcount "$work/words.txt" --all \
  >"$work/counts" 2>"$work/counts.err" || code=$?
[[ $code -eq 0 ]] || { cat "$work/counts.err" >&2; fail "mrctl-py wordcount exited $code"; }
diff -u "$work/expected" "$work/counts" >&2 || fail "mrctl-py wordcount: wrong counts"
ok "mrctl-py wordcount on mrd at 127.0.0.1:$port: three 3, two 2, one 1"

# --- stop the server started above, by its PID, and see it go ---
kill -TERM "$server"
for _ in $(seq 400); do
  running "$server" || break
  sleep 0.05
done
! running "$server" || { cat "$work/mrd.log" >&2; fail "mrd still running 20 s after SIGTERM"; }
code=0
wait "$server" || code=$?
server=
[[ $code -eq 0 ]] || { cat "$work/mrd.log" >&2; fail "mrd exited $code after SIGTERM, wanted 0"; }
ok "mrd stopped by SIGTERM and exited 0"
echo "python_package_test: passed"
