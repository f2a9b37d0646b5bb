#!/usr/bin/env bash
# Copies every job that can still be read from a damaged mrd database into a new data directory,
# keeping ids and the highest id handed out (so no id is ever reused). mrd refuses to start on a
# damaged database (exit code 5); this is the way back. See docs/reliability.md.
#
#   scripts/salvage-data-dir.sh DAMAGED.sqlite3 NEW_DIR
#   mrd --data-dir NEW_DIR ...
#
# Rows are copied one id at a time, so a damaged page costs only the jobs on it (FETCH then
# answers JOB_EXPIRED for them); SQLite's .recover would do better but Debian's sqlite3 is built
# without the sqlite_dbpage table it needs. Needs the sqlite3 command-line shell.
set -euo pipefail

if [[ $# -ne 2 ]]; then
  echo "usage: $0 DAMAGED.sqlite3 NEW_DIR" >&2
  exit 2
fi
damaged=$1
new_dir=$2
new=$new_dir/mrd.sqlite3
[[ -f $damaged ]] || { echo "salvage: no file $damaged" >&2; exit 1; }
[[ ! -e $new ]] || { echo "salvage: $new exists already; choose an empty directory" >&2; exit 1; }
mkdir -p "$new_dir"

read_old() { sqlite3 -readonly "$damaged" "$1" 2>/dev/null || true; }

schema=$(read_old "SELECT sql || ';' FROM sqlite_schema WHERE type = 'table' AND name IN ('jobs', 'counters')")
[[ -n $schema ]] || { echo "salvage: cannot read the schema of $damaged: nothing to salvage" >&2; exit 1; }
highest=$(read_old "SELECT value FROM counters WHERE name = 'highest_id'")
# Without its counter, the highest id can be the last row only if that is readable.
[[ -n $highest ]] || highest=$(read_old "SELECT max(id) FROM jobs")
[[ -n $highest ]] || { echo "salvage: cannot learn the highest id from $damaged" >&2; exit 1; }

errors=$(mktemp)
trap 'rm -f "$errors"' EXIT
{
  # No journal and no fsync while copying: a failed salvage is simply run again.
  echo "PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF;"
  echo "$schema"
  echo "PRAGMA application_id = $(read_old 'PRAGMA application_id');"
  echo "PRAGMA user_version = $(read_old 'PRAGMA user_version');"
  echo "ATTACH 'file:$damaged?mode=ro' AS old;"
  echo "INSERT INTO counters (name, value) VALUES ('highest_id', $highest);"
  # One statement per id: the shell reports a failed one and goes on with the next.
  seq 1 "$highest" | sed 's/.*/INSERT INTO jobs SELECT * FROM old.jobs WHERE id = &;/'
  echo "PRAGMA journal_mode = WAL;"
} | sqlite3 "$new" >/dev/null 2>"$errors" || true

# Big inputs of unfinished jobs and big results are files beside the database
# (DIR/inputs/<id>.input, DIR/results/<id>.result): copied too. A job whose file is missing fails
# when the server loads it, saying so. (A database older than the result_file column has none.)
copy_named_files() {  # FOLDER COLUMN WHAT
  mkdir -p "$new_dir/$1"
  sqlite3 "$new" "SELECT $2 FROM jobs WHERE $2 IS NOT NULL" 2>/dev/null |
    while read -r name; do
      cp -- "$(dirname "$damaged")/$1/$name" "$new_dir/$1/$name" ||
        echo "salvage: cannot copy the $3 file $(dirname "$damaged")/$1/$name: its job will fail" >&2
    done
}
copy_named_files inputs input_file input
copy_named_files results result_file result

rows=$(sqlite3 "$new" "SELECT count(*) FROM jobs")
unreadable=$(grep -c 'malformed\|not a database\|disk I/O' "$errors" || true)
echo "salvage: $rows jobs copied into $new (ids up to $highest); $unreadable ids unreadable"
if [[ $(sqlite3 "$new" "PRAGMA quick_check") != ok ]]; then
  echo "salvage: the new database fails its check" >&2
  exit 1
fi
