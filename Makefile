# Build commands. `make test` installs what it needs first (once):
#   .venv/             the package in editable mode with its dev tools
#   .servers/          a real local LLM (llama-server + SmolLM2-135M + Ollama-API translator),
#                      see scripts/install-servers.sh (first run: ~15 min if llama-server
#                      has to be compiled; later runs: about a second)
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: install servers test lint format demo bench clean distclean lock

install: $(VENV)/.installed
	PY="$(PY)" bash scripts/install-servers.sh
	bash scripts/install-redis.sh
	bash scripts/install-chromium.sh

# Rebuilt when pyproject.toml changes.
$(VENV)/.installed: pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# Every dependency pinned with its hashes (supply-chain guard): see `make lock`.
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $@

servers:
	PY="$(PY)" bash scripts/install-servers.sh

test: install
	$(BIN)/python -m pytest -q

lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(VENV)/.installed
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

demo: install
	$(BIN)/python examples/demo.py

bench: install
	$(BIN)/python bench/run.py

# Keeps .servers/ (the compiled llama-server takes ~15 min to rebuild); distclean drops it too.
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
