#!/usr/bin/env bash
# Make sure a Debian package's program is installed: `apt-ensure.sh PACKAGE PROGRAM [NOTE]`.
# Idempotent: when PROGRAM (a name on the PATH or an absolute path) is there, it only says
# so. Otherwise it runs apt-get (as root, or with sudo). Never starts or configures a
# service. Exit status 0 when the program is installed (or already was), 1 when it cannot be.
set -euo pipefail

package=$1 program=$2 note=${3:-}
log() { printf '[install-%s] %s\n' "$package" "$*"; }
die() { printf '[install-%s] ERROR: %s\n' "$package" "$*" >&2; exit 1; }

found() { command -v "$program" 2>/dev/null || { [[ -x "/usr/bin/$program" ]] && echo "/usr/bin/$program"; }; }

if bin="$(found)"; then
  log "$program present: $bin ($("$bin" --version 2>/dev/null | head -n1))"
  exit 0
fi

command -v apt-get >/dev/null 2>&1 ||
  die "$program is missing and apt-get is not available: install Debian's $package package by hand"

SUDO=""
if [[ "$(id -u)" != 0 ]]; then
  command -v sudo >/dev/null 2>&1 || die "$program is missing: run as root, or: apt-get install $package"
  SUDO="sudo"
fi

log "installing $package (apt-get${note:+; $note})"
export DEBIAN_FRONTEND=noninteractive
# Quiet, but a progress line every 15 s (what apt-get is at: Get:N, Unpacking, Setting up).
logfile="${TMPDIR:-/tmp}/apt-ensure-$package.log"
bash "$(dirname "${BASH_SOURCE[0]}")/progress.sh" --count '^(Get|Unpacking|Setting up)' \
  --match '^(Hit|Get|Unpacking|Setting up|Reading|Fetched)' "install-$package: apt-get steps" "$logfile" -- \
  bash -c "$SUDO apt-get update -q && $SUDO apt-get install -y -q --no-install-recommends '$package'" ||
  die "apt-get could not install $package (log: $logfile)"

bin="$(found)" || die "apt-get installed $package but $program is missing"
log "installed: $bin ($("$bin" --version 2>/dev/null | head -n1))"
