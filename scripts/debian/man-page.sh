#!/usr/bin/env bash
# Writes the man page of PROGRAM, made by help2man from its own --help and --version, to
# OUTPUT (gzipped, as Debian ships them). Usage: man-page.sh PROGRAM 'one-line summary' OUTPUT
set -euo pipefail
help2man --no-info --name="$2" "$1" | gzip -9n >"$3.tmp"
mv "$3.tmp" "$3"
