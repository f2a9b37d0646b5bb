#!/usr/bin/env bash
# Builds the Debian package (build/mrd_VERSION_ARCH.deb), checks it with lintian, installs it
# with apt, runs a real job with the installed programs, checks the systemd units, and removes
# the package again. Needs root (it installs the package). Extra arguments go to CMake.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh lintian help2man dpkg-dev systemd man-db
bash scripts/build.sh -DMRD_PACKAGE=ON "$@"
build=${BUILD_DIR:-build}
rm -f "$build"/mrd_*.deb
(cd "$build" && cpack -G DEB >/dev/null)
deb=$(realpath "$build"/mrd_*.deb)
echo "package: $deb"

echo "package: lintian"
lintian --fail-on error "$deb"

# It installs the package and purges it after: on a machine where mrd is installed already,
# that would take away the administrator's installation and settings.
if dpkg-query -W -f='${Status}' mrd 2>/dev/null | grep -q "install ok installed"; then
  echo "package: mrd is installed on this machine; remove it first (this script installs and" \
    "purges its own)" >&2
  exit 1
fi
echo "package: installing it"
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -qq "$deb" >/dev/null
work=$(mktemp -d)
mrd_pid=""
web_pid=""
cleanup() {
  [[ -n $web_pid ]] && kill "$web_pid" 2>/dev/null || true
  [[ -n $mrd_pid ]] && kill "$mrd_pid" 2>/dev/null || true
  rm -rf "$work"
  apt-get purge -y -qq mrd >/dev/null || true  # purge: the /etc/default files go too
}
trap cleanup EXIT

# Waits (at most 20 s) for a program to write its port file; prints the port.
port_of() {
  for _ in $(seq 200); do
    [[ -s $1 ]] && { cat "$1"; return; }
    sleep 0.1
  done
  echo "package: no port in $1" >&2
  return 1
}

echo "package: a job with the installed programs"
/usr/bin/mrd --listen 127.0.0.1:0 --port-file "$work/port" --data-dir "$work/data" 2>"$work/mrd.log" &
mrd_pid=$!
port=$(port_of "$work/port")
printf 'one two two\nthree three three\n' >"$work/words.txt"
counts=$(/usr/bin/mrctl --server "127.0.0.1:$port" --quiet wordcount "$work/words.txt")
echo "$counts"
grep -Eq '^ *3 +three$' <<<"$counts" && grep -Eq '^ *2 +two$' <<<"$counts" ||
  { echo "package: wrong word counts" >&2; exit 1; }

/usr/bin/mrd-web --server "127.0.0.1:$port" --listen 127.0.0.1:0 --port-file "$work/web-port" \
  2>"$work/web.log" &
web_pid=$!
web_port=$(port_of "$work/web-port")
[[ $(curl -s "http://127.0.0.1:$web_port/healthz") == ok ]] ||
  { echo "package: mrd-web's /healthz is not ok" >&2; exit 1; }
# Both stop cleanly on SIGTERM: exit status 0.
kill -TERM "$web_pid"
wait "$web_pid"
web_pid=""
kill -TERM "$mrd_pid"
wait "$mrd_pid"
mrd_pid=""

echo "package: the Python client, man pages, completion, units"
[[ $(cd "$work" && /usr/bin/python3 -c 'import mrd_client; print(mrd_client.__file__)') == \
  /usr/lib/python3/dist-packages/mrd_client.py ]]
for program in mrd mrctl mrd-web; do
  man -w "$program" >/dev/null
  # help2man's page: a title naming the program, and its options (dashes escaped as \-).
  page=$(zcat "/usr/share/man/man1/$program.1.gz")
  if ! grep -q "^\.TH ${program^^} " <<<"$page" || ! grep -q 'version' <<<"$page"; then
    echo "package: the man page of $program is not help2man's" >&2
    exit 1
  fi
done
bash -c 'source /usr/share/bash-completion/completions/mrctl && complete -p mrctl' >/dev/null
systemd-analyze verify /lib/systemd/system/mrd.service /lib/systemd/system/mrd-web.service
[[ -f /etc/default/mrd && -f /etc/default/mrd-web ]]
echo "package: ok"
