#!/usr/bin/env bash
# Run a long install step quietly, but never silently:
#
#   progress.sh [--total N] [--count REGEX] [--match REGEX] TAG LOG -- COMMAND [ARGS...]
#
# COMMAND's output (stdout and stderr) goes to LOG.  Every 15 s (PROGRESS_EVERY) a line
# "[TAG] 45 s: <how far>" is printed, where <how far> is
#   - with --count REGEX: how many lines of LOG match REGEX so far (" of N" with --total),
#   - then the last line of LOG matching --match REGEX (default: any non-empty line).
# On failure the tail of LOG is shown and COMMAND's exit status is returned.
set -uo pipefail

total="" count="" match="."
while [[ $# -gt 0 ]]; do
  case "$1" in
    --total) total=$2; shift 2 ;;
    --count) count=$2; shift 2 ;;
    --match) match=$2; shift 2 ;;
    --) shift; break ;;
    *) break ;;
  esac
done
tag=$1 log=$2; shift 2
[[ "${1:-}" == -- ]] && shift
every="${PROGRESS_EVERY:-15}"

mkdir -p "$(dirname "$log")"
: >"$log"
start=$SECONDS
"$@" >>"$log" 2>&1 &
pid=$!

status_line() {
  local n last
  if [[ -n "$count" ]]; then
    n=$(grep -cE -- "$count" "$log" 2>/dev/null || true)
    printf '%s%s' "${n:-0}" "${total:+ of $total}"
    printf ' | '
  fi
  last=$(grep -E -- "$match" "$log" 2>/dev/null | tail -n 1 | tr -s ' \t\r' ' ' | cut -c1-110)
  printf '%s' "${last:-starting}"
}

# Sleep in 1 s steps so that a quick command finishes without waiting for the tick.
next=$every
while kill -0 "$pid" 2>/dev/null; do
  sleep 1
  if (( SECONDS - start >= next )) && kill -0 "$pid" 2>/dev/null; then
    printf '[%s] %d s: %s\n' "$tag" "$((SECONDS - start))" "$(status_line)"
    next=$((next + every))
  fi
done
wait "$pid"
rc=$?
if [[ $rc -ne 0 ]]; then
  printf '[%s] FAILED (exit %d) after %d s; last lines of %s:\n' "$tag" "$rc" "$((SECONDS - start))" "$log" >&2
  tail -n 30 "$log" >&2
fi
exit $rc
