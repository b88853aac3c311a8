#!/usr/bin/env bash
# Install Debian's Chromium for the status-page browser test (tests/test_status_page.py).
# Idempotent: when /usr/bin/chromium is already there it only says so. The test starts
# Chromium headless itself, on pages served on 127.0.0.1; this script never starts it.
#
# Called by `make install`; run it by hand with `bash scripts/install-chromium.sh`.
# Exit status: 0 when Chromium is installed (or already was), 1 when it cannot be.
set -euo pipefail

log() { printf '[install-chromium] %s\n' "$*"; }
die() { printf '[install-chromium] ERROR: %s\n' "$*" >&2; exit 1; }

BIN=/usr/bin/chromium

if [[ -x "$BIN" ]]; then
  log "chromium present: $BIN ($("$BIN" --version 2>/dev/null | head -n1))"
  exit 0
fi

command -v apt-get >/dev/null 2>&1 ||
  die "chromium is missing and apt-get is not available: install Debian's chromium package by hand"

SUDO=""
if [[ "$(id -u)" != 0 ]]; then
  command -v sudo >/dev/null 2>&1 || die "chromium is missing: run as root, or install it: apt-get install chromium"
  SUDO="sudo"
fi

log "installing chromium (apt-get; about 100 MB the first time)"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null

[[ -x "$BIN" ]] || die "apt-get installed chromium but $BIN is missing"
log "installed: $BIN ($("$BIN" --version 2>/dev/null | head -n1))"
