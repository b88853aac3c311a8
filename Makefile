# Build commands. `make demo` and `make test` install what they need first (once):
#   .venv/             the package in editable mode with its dev tools      (make install)
#   .servers/          a real local LLM (llama-server + SmolLM2-135M + Ollama-API translator),
#                      see scripts/install-servers.sh; on a CPU where the prebuilt llama-server
#                      dies, its CPU backend is compiled here (~20 s)          (make install)
#   redis-server, chromium   Debian packages only the tests use              (make test-deps)
# Later runs only check stamps (about a second).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: install servers test-deps test lint format demo bench clean distclean lock

# What the demo needs: the venv and the local model servers.
install: $(VENV)/.installed servers

# Rebuilt when pyproject.toml changes.  Every dependency pinned with its hashes
# (supply-chain guard): see `make lock`.  Quiet, with a progress line every 15 s.
$(VENV)/.installed: pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	@echo "[install] installing $$(grep -c '^[A-Za-z0-9].*==' requirements.lock) pinned packages into $(VENV) (log: $(VENV)/install.log)"
	@bash scripts/progress.sh --count '^Collecting ' --total "$$(grep -c '^[A-Za-z0-9].*==' requirements.lock)" \
		--match '^(Collecting|Downloading|Installing|Building|Successfully)' "install: $(VENV) packages collected" \
		$(VENV)/install.log -- $(BIN)/python -m pip install --progress-bar off --require-hashes -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $@

servers:
	PY="$(PY)" bash scripts/install-servers.sh

# What only the tests add: Debian's redis-server and chromium, and LiteLLM's Proxy in its own
# venv (.servers/proxy-venv, pinned: scripts/proxy-requirements.txt; about a minute the first time).
test-deps:
	bash scripts/install-redis.sh
	bash scripts/install-chromium.sh
	PY="$(PY)" bash scripts/install-litellm-proxy.sh

test: install test-deps
	$(BIN)/python -m pytest -q

lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

format: $(VENV)/.installed
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

demo: install
	$(BIN)/python examples/demo.py

bench: install
	$(BIN)/python bench/run.py

# Keeps .servers/ (the model and servers take about a minute to reinstall); distclean drops it too.
clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build dist *.egg-info
	find . -name __pycache__ -type d -not -path './.servers/*' -prune -exec rm -rf {} +

distclean: clean
	rm -rf .servers

# Re-pin every dependency with hashes after a change of pyproject.toml's dependencies.
lock:
	$(PY) -m venv .lock-venv && .lock-venv/bin/pip install --quiet pip-tools
	.lock-venv/bin/pip-compile --quiet --no-emit-index-url --no-emit-find-links --generate-hashes --extra dev --extra redis --extra otel \
		--strip-extras --allow-unsafe -o requirements.lock pyproject.toml
	rm -rf .lock-venv
