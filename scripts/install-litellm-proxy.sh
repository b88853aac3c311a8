#!/usr/bin/env bash
# Install LiteLLM's Proxy server (`litellm --config FILE`) for tests/test_proxy_real.py, which
# serves the file `sarai-llm export litellm-proxy` writes with it. Everything in its own venv
# (the proxy pins its own fastapi, pydantic, openai..., which must not meet ours):
#
#   .servers/proxy-venv/         litellm (the version of requirements.lock) and the proxy's
#                                dependencies, each pinned with its hashes in
#                                scripts/proxy-requirements.txt
#   .servers/litellm-proxy.ok    stamp: the sha256 of scripts/proxy-requirements.txt
#   .servers/logs/pip-litellm-proxy.log
#
# `pip install 'litellm[proxy]'` does not work: its `litellm-proxy` package is not on the
# registry. The proxy's dependencies install by name (scripts/proxy-requirements.in).
# Re-pin (after a litellm upgrade in requirements.lock): edit proxy-requirements.in, then
#   python3.11 -m venv /tmp/lock && /tmp/lock/bin/pip install pip-tools && cd scripts &&
#   /tmp/lock/bin/pip-compile --quiet --no-emit-index-url --no-emit-find-links --generate-hashes \
#     --strip-extras --allow-unsafe -o proxy-requirements.txt proxy-requirements.in
#
# Idempotent: a second run only checks the stamp (well under a second). Fresh: 114 packages,
# 55-80 s on 2 cores. Called by `make test-deps` (`make test`). PY=python3.11 picks the interpreter.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
S="${SARAI_SERVERS_DIR:-$ROOT/.servers}"
V="$S/proxy-venv"
REQ="$ROOT/scripts/proxy-requirements.txt"
STAMP="$S/litellm-proxy.ok"
if [[ -z "${PY:-}" ]]; then
  if command -v python3.11 >/dev/null 2>&1; then PY=python3.11; else PY=python3; fi
fi

log() { printf '[install-litellm-proxy] %s\n' "$*"; }
die() { printf '[install-litellm-proxy] ERROR: %s\n' "$*" >&2; exit 1; }
T0=$SECONDS

want="$(sha256sum "$REQ" | cut -d' ' -f1)"
if [[ -f "$STAMP" && -x "$V/bin/litellm" && "$(cat "$STAMP")" == "$want" ]]; then
  log "LiteLLM Proxy already installed: $V/bin/litellm"
  exit 0
fi

# The proxy must run the litellm the package is locked to: the export is checked against it.
pin() { grep -m1 -oE '^litellm==[^ ]+' "$1" || true; }
[[ "$(pin "$REQ")" == "$(pin "$ROOT/requirements.lock")" ]] ||
  die "$REQ pins $(pin "$REQ"), requirements.lock $(pin "$ROOT/requirements.lock"): re-pin (see this script's header)"

mkdir -p "$S/logs"
exec 9>"$S/.install-litellm-proxy.lock"   # one installer at a time
flock 9
rm -f "$STAMP"
[[ -x "$V/bin/python" ]] || { log "creating venv $V"; "$PY" -m venv "$V"; }
n="$(grep -cE '^[A-Za-z0-9].*==' "$REQ")"
log "installing litellm's proxy: $n pinned packages into $V (log: $S/logs/pip-litellm-proxy.log)"
bash "$ROOT/scripts/progress.sh" --count '^(Collecting|Processing) ' --total "$n" \
  --match '^(Collecting|Downloading|Installing|Successfully)' "install-litellm-proxy: packages collected" \
  "$S/logs/pip-litellm-proxy.log" -- \
  "$V/bin/python" -m pip install --progress-bar off --require-hashes -r "$REQ" ||
  die "pip could not install the proxy (log: $S/logs/pip-litellm-proxy.log)"
LITELLM_LOCAL_MODEL_COST_MAP=True "$V/bin/litellm" --version >>"$S/logs/pip-litellm-proxy.log" 2>&1 ||
  die "$V/bin/litellm does not run (log: $S/logs/pip-litellm-proxy.log)"
echo "$want" >"$STAMP"
log "done in $((SECONDS - T0)) s"
