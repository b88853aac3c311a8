#!/usr/bin/env bash
# Install redis-server (Debian package) for the Redis cache-backend tests and for
# trying the Redis backend locally. Idempotent: when redis-server is already on the
# PATH it only says so. The tests start their own server on 127.0.0.1 with persistence
# off (tests/redis_server.py); this script never starts or configures a service.
#
# Called by `make install`; run it by hand with `bash scripts/install-redis.sh`.
set -euo pipefail

log() { printf '[install-redis] %s\n' "$*"; }
die() { printf '[install-redis] ERROR: %s\n' "$*" >&2; exit 1; }

found() {
  command -v redis-server 2>/dev/null || { [[ -x /usr/bin/redis-server ]] && echo /usr/bin/redis-server; }
}

if bin="$(found)"; then
  log "redis-server present: $bin ($("$bin" --version | head -n1))"
  exit 0
fi

command -v apt-get >/dev/null 2>&1 ||
  die "redis-server is missing and apt-get is not available: install redis-server (Redis >= 6) by hand"

SUDO=""
if [[ "$(id -u)" != 0 ]]; then
  command -v sudo >/dev/null 2>&1 || die "redis-server is missing: run as root, or install it: apt-get install redis-server"
  SUDO="sudo"
fi

log "installing redis-server (apt-get)"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends redis-server >/dev/null

bin="$(found)" || die "apt-get installed redis-server but it is not on the PATH"
log "installed: $bin ($("$bin" --version | head -n1))"
