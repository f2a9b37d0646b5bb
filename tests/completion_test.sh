#!/usr/bin/env bash
# Bash completion of mrctl (client/mrctl/mrctl.bash-completion), driven the way bash drives it:
# COMP_WORDS, COMP_CWORD, COMP_LINE and COMP_POINT are set, _mrctl is called, COMPREPLY is checked.
# The commands and options it must offer are read here from mrctl's help with grep and sed,
# independently of the completion's own parser. Needs bash and coreutils only (no bash-completion).
# Usage: completion_test.sh MRCTL_BINARY COMPLETION_FILE
set -uo pipefail
if (($# != 2)); then
  echo "usage: $0 MRCTL_BINARY COMPLETION_FILE" >&2
  exit 2
fi
mrctl=$1
completion=$2
[[ $mrctl == /* ]] || mrctl=$PWD/$mrctl
[[ $completion == /* ]] || completion=$PWD/$completion
if [[ ! -x $mrctl || ! -r $completion ]]; then
  echo "FAILED: $mrctl must be executable and $completion readable"
  exit 1
fi
# mrctl reads MRD_* from the environment, and its --help fails on a bad value (see below).
for variable in $(compgen -e MRD_); do unset "$variable"; done
COMP_LINE='' COMP_POINT=0 COMPREPLY=()
bindir=${mrctl%/*}
name=${mrctl##*/}  # what the user types: mrctl
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export PATH="$bindir:$PATH"
# Sourced inside a function, as bash-completion's loader does: its globals must survive that.
load_completion() {
  # shellcheck source=../client/mrctl/mrctl.bash-completion
  source "$completion"
}
load_completion

passed=0
failed=0
pass() { passed=$((passed + 1)); }
fail() {  # fail NAME: reports NAME and the reply it got
  failed=$((failed + 1))
  echo "FAILED: $1"
  echo "  line:  ${COMP_LINE@Q} (cursor at $COMP_POINT)"
  echo "  reply: ${COMPREPLY[*]@Q}"
}

# complete_at LINE POINT CWORD WORD...: runs _mrctl with these COMP_* values, as bash would.
complete_at() {
  COMP_LINE=$1
  COMP_POINT=$2
  COMP_CWORD=$3
  shift 3
  COMP_WORDS=("$@")
  COMPREPLY=(stale)
  _mrctl 2>>"$work/stderr"
}
# complete_line LINE: the cursor at the end of LINE. Its words are split as bash splits them: at
# spaces, and around each run of COMP_WORDBREAKS characters (--out=a is "--out" "=" "a").
complete_line() {
  local -a words=() chunks
  local chunk breaks=${COMP_WORDBREAKS//[[:space:]]/}
  local piece="^([^$breaks]*)([$breaks]+)(.*)\$"
  read -ra chunks <<<"$1"
  for chunk in "${chunks[@]}"; do
    while [[ -n $breaks && $chunk =~ $piece ]]; do
      [[ -n ${BASH_REMATCH[1]} ]] && words+=("${BASH_REMATCH[1]}")
      words+=("${BASH_REMATCH[2]}")
      chunk=${BASH_REMATCH[3]}
    done
    [[ -n $chunk ]] && words+=("$chunk")
  done
  [[ $1 == *' ' ]] && words+=("")
  complete_at "$1" "${#1}" $((${#words[@]} - 1)) "${words[@]}"
}

sorted() { printf '%s\n' "$@" | LC_ALL=C sort; }
# expect_exactly NAME WORD...: the reply holds these words and no other.
expect_exactly() {
  local name=$1
  shift
  if [[ $(sorted "${COMPREPLY[@]}") == "$(sorted "$@")" ]]; then pass; else fail "$name"; fi
}
# expect_contains NAME WORD...: the reply holds each of these words (at least one).
expect_contains() {
  local name=$1 word missing=()
  shift
  (($#)) || { fail "$name: no words to look for"; return; }
  for word in "$@"; do
    [[ $'\n'$(sorted "${COMPREPLY[@]}")$'\n' == *$'\n'"$word"$'\n'* ]] || missing+=("$word")
  done
  if ((${#missing[@]} == 0)); then pass; else fail "$name: missing ${missing[*]}"; fi
}
# expect_none NAME WORD...: the reply holds none of these words.
expect_none() {
  local name=$1 word found=()
  shift
  for word in "$@"; do
    [[ $'\n'$(sorted "${COMPREPLY[@]}")$'\n' == *$'\n'"$word"$'\n'* ]] && found+=("$word")
  done
  if ((${#found[@]} == 0)); then pass; else fail "$name: unexpected ${found[*]}"; fi
}
# expect_all_start NAME PREFIX: the reply is not empty and every word in it starts with PREFIX.
expect_all_start() {
  local word
  for word in "${COMPREPLY[@]}"; do
    [[ $word == "$2"* ]] || { fail "$1: $word does not start with $2"; return; }
  done
  if ((${#COMPREPLY[@]})); then pass; else fail "$1: no reply"; fi
}

# --- What mrctl's help lists, read with sed and grep ---
commands_of() {  # commands_of PROGRAM: the names in the Subcommands: section of its help
  "$1" --help | sed -n '/^Subcommands:/,/^[^ ]/p' | grep -E '^ {2}[^ ]' | awk '{print $1}'
}
long_options_of() {  # long_options_of ARG...: the long options in `mrctl ARG... --help`
  "$mrctl" "$@" --help | grep -oE '^ {2,4}-[^ ]+' | tr -d ' ' | tr ',' '\n' | grep -E '^--' |
    LC_ALL=C sort -u
}
mapfile -t commands < <(commands_of "$mrctl")
mapfile -t top_options < <(long_options_of)
for command in "${commands[@]}"; do long_options_of "$command"; done | LC_ALL=C sort -u \
  >"$work/command_options"
# Options only the top level lists are global: mrctl accepts them after any command name.
mapfile -t global_options < <(long_options_of | LC_ALL=C comm -23 - "$work/command_options")
# The parse above must have worked for the checks below to mean anything.
if [[ " ${commands[*]} " == *' wordcount '*' matmul '*' status '*' server-stats '* &&
  " ${global_options[*]} " == *' --server '*' --token-file '* ]]; then
  pass
else
  fail "read from mrctl's help: commands ${commands[*]}; global options ${global_options[*]}"
fi

# --- The completion is registered for mrctl ---
if [[ $(complete -p "$name" 2>/dev/null) == *'-F _mrctl'* ]]; then pass; else fail "complete -p $name"; fi

# --- Commands ---
complete_line "$name "
expect_exactly "every command, nothing else" "${commands[@]}"
complete_line "$name wor"
expect_exactly "wor completes to wordcount" wordcount
complete_line "$name server-"
expect_exactly "server- completes to server-stats" server-stats
complete_line "$name zzz"
expect_exactly "no command starts with zzz"
complete_line "$name nosuchcommand --"
expect_exactly "nothing after an unknown command"

# --- Options: each command's own and the global ones; the top level's ---
complete_line "$name --"
expect_contains "mrctl -- offers the top-level options" "${top_options[@]}"
expect_all_start "mrctl -- offers only options" --
complete_line "$name -"
expect_contains "mrctl - offers the short options" -q -h
for command in "${commands[@]}"; do
  mapfile -t own < <(long_options_of "$command")
  complete_line "$name $command --"
  expect_contains "$command -- offers its own options" "${own[@]}"
  expect_contains "$command -- offers the global options" "${global_options[@]}"
  expect_all_start "$command -- offers only options" --
done
complete_line "$name wordcount --to"
expect_exactly "wordcount --to" --top --token-file
complete_line "$name matmul --ou"
expect_exactly "matmul --ou" --out
complete_line "$name --tl"
expect_exactly "--tl before the command" --tls
complete_line "$name status --"
expect_contains "status -- offers its --json and global options" --json --server --token-file --tls
expect_none "status -- offers no job options" --no-wait --chunk-bytes --top --out
complete_line "$name list "
expect_contains "list takes no positional: its options" --json --server
expect_none "list offers no short options unasked" -q -h
complete_line "$name submit --"
expect_contains "submit --" --mapper --reducer --documents --numbers --matrices --no-wait
# The cursor inside a word: only what is before it counts.
complete_at "$name wordcount --tofoo" $((${#name} + 15)) 2 "$name" wordcount --tofoo
expect_exactly "cursor inside --to|foo" --top --token-file

# --- File names: for FILE positionals and for options that take files ---
files=(alpha.txt alpine.npy beta.txt 'with space.txt')
mkdir "$work/files" "$work/files/adir"
for f in "${files[@]}"; do : >"$work/files/$f"; done
cd "$work/files" || exit 1
complete_line "$name wordcount al"
expect_exactly "wordcount FILE" alpha.txt alpine.npy
complete_line "$name wordcount "
expect_exactly "wordcount FILE, empty word" "${files[@]}" adir
complete_line "$name index alpha.txt beta.txt wi"
expect_exactly "a file name with a space" 'with space.txt'
complete_line "$name bigrams $work/files/b"
expect_exactly "an absolute path" "$work/files/beta.txt"
complete_line "$name matmul alpha.txt b"
expect_exactly "matmul's second matrix" beta.txt
complete_line "$name matmul alpha.txt beta.txt "
expect_none "matmul takes two files only" "${files[@]}"
complete_line "$name stats alpha.txt "
expect_none "stats takes one file only" "${files[@]}"
complete_line "$name stats --chunk-bytes 100 --json -q --server h:1 al"
expect_exactly "FILE after options and their values" alpha.txt alpine.npy
complete_line "$name --server h:1 --timeout 5 wordcount --top 3 --all be"
expect_exactly "FILE after global and command options" beta.txt
for option in --token-file --cacert --cert --key; do
  complete_line "$name $option a"
  expect_exactly "$option FILE before the command" alpha.txt alpine.npy adir
  complete_line "$name list $option "
  expect_exactly "$option FILE after the command" "${files[@]}" adir
done
complete_line "$name matmul --out al"
expect_exactly "matmul --out FILE" alpha.txt alpine.npy
complete_line "$name submit --documents alpha.txt beta.txt al"
expect_exactly "submit --documents FILE..." alpha.txt alpine.npy
complete_line "$name submit --numbers be"
expect_exactly "submit --numbers FILE" beta.txt
complete_line "$name submit --matrices alpha.txt be"
expect_exactly "submit --matrices FILE FILE" beta.txt
complete_line "$name submit --documents alpha.txt --ma"
expect_exactly "an option ends --documents' values" --mapper --matrices
complete_line "$name submit --documents alpha.txt --mapper "
expect_exactly "--mapper's value after --documents' values"

# --- No file names where none are wanted ---
complete_line "$name status "
expect_exactly "status ID"
complete_line "$name --server "
expect_exactly "--server HOST:PORT"
complete_line "$name wordcount --top "
expect_exactly "--top N"
complete_line "$name submit --mapper "
expect_exactly "--mapper NAME"
complete_line "$name --timeout 5 "
expect_exactly "after --timeout's value: the commands" "${commands[@]}"

# --- --option=value: bash splits the word at '=' and ':' (COMP_WORDBREAKS), or does not ---
complete_line "$name matmul --out=al"
if [[ ${COMP_WORDS[-2]} == = ]]; then pass; else fail "the test splits words at = as bash does"; fi
expect_exactly "--out=al, split at =" alpha.txt alpine.npy
complete_line "$name matmul --out="
expect_exactly "--out=, split at =" "${files[@]}" adir
complete_line "$name --server=h:1 wordcount --top=5 be"
expect_exactly "FILE after --option=value words" beta.txt
: >"$work/files/x:1.pem"
complete_line "$name --cacert=x:"
expect_exactly "--cacert=x:, split at = and :" 1.pem
rm "$work/files/x:1.pem"
complete_line "$name wordcount --top=5 --to"
expect_exactly "options after --top=5" --top --token-file
saved_breaks=$COMP_WORDBREAKS
COMP_WORDBREAKS=${COMP_WORDBREAKS//=/}
complete_line "$name --token-file=be"
expect_exactly "--token-file=be, one word when = breaks no word" --token-file=beta.txt
COMP_WORDBREAKS=$saved_breaks

# --- The program completed is the first word: a path, relative or with ~ ---
PATH=/usr/bin:/bin
complete_line "$mrctl wor"
expect_exactly "an absolute path, not on PATH" wordcount
cd "$bindir/.." || exit 1
complete_line "${bindir##*/}/$name matmul --ou"
expect_exactly "a relative path, like build/client/mrctl" --out
cd "$work/files" || exit 1
ln -s "$mrctl" "$work/linked-mrctl"
# shellcheck disable=SC2088 # a ~ as typed, for the completion to expand
HOME=$work complete_line "~/linked-mrctl wordcount --to"
expect_exactly "a path under ~" --top --token-file
export PATH="$bindir:$PATH"

# A stand-in mrctl with other commands: the completion asks it, not a list of its own.
mkdir "$work/fake"
fake=$work/fake/mrctl
write_fake() {  # write_fake COMMAND: a program whose help (CLI11's layout) lists COMMAND only
  cat >"$fake" <<EOF
#!/bin/sh
if [ "\$1" = $1 ]; then cat <<'HELP'
Do the $1 thing
Usage: mrctl $1 [OPTIONS] THING

Positionals:
  THING TEXT REQUIRED         A thing to frob

Options:
  -h,--help                   Print this help message and exit
  --$1-input TEXT:FILE Excludes: --$1-count
                              Where to read from
  --$1-count UINT=3           How many
HELP
else cat <<'HELP'
A stand-in for mrctl
Usage: mrctl [OPTIONS] SUBCOMMAND

Options:
  -h,--help                   Print this help message and exit
  --fake-global TEXT          A setting

Subcommands:
  $1                   Do the $1 thing
HELP
fi
EOF
  chmod +x "$fake"
}
write_fake frobnicate
complete_line "$fake "
expect_exactly "the commands of the program being completed" frobnicate
complete_line "$fake frobnicate --"
expect_exactly "its command's options and its globals" --help --frobnicate-input \
  --frobnicate-count --fake-global
complete_line "$fake frobnicate --frobnicate-input al"
expect_exactly "its TEXT:FILE option" alpha.txt alpine.npy
complete_line "$fake frobnicate --frobnicate-count 3 al"
expect_exactly "its positional, not a file"
complete_line "$fake --fake-global al"
expect_exactly "its global option, not a file"
complete_line "$name wor"
expect_exactly "mrctl still completes from mrctl" wordcount
# The program changes within the shell's life: its new help is read.
write_fake zap-it
complete_line "$fake "
expect_exactly "a rewritten program is read again" zap-it

# mrctl's environment variables must not break the completion: CLI11 checks them before it
# handles --help (MRD_TLS=maybe, or an MRD_CACERT file that is gone, makes --help exit 2).
_mrctl_cache=()
MRD_TLS=maybe MRD_TRACE=maybe MRD_CACERT=$work/gone.pem complete_line "$name wordcount --to"
expect_exactly "with bad MRD_* variables" --top --token-file

# --- Quiet ---
if [[ ! -s $work/stderr ]]; then pass; else fail "_mrctl wrote on stderr: $(head -c 500 "$work/stderr")"; fi

echo "completion: $passed passed, $failed failed"
((failed == 0))
