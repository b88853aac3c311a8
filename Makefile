# Build commands. `make test` installs what it needs first (once):
#   .venv/             the package in editable mode with its dev tools
#   .servers/          a real local LLM (llama-server + SmolLM2-135M + Ollama-API translator),
#                      see scripts/install-servers.sh (first run: ~15 min if llama-server
#                      has to be compiled; later runs: about a second)
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: install servers test lint format demo bench clean distclean

install: $(VENV)/.installed
	PY="$(PY)" bash scripts/install-servers.sh
	bash scripts/install-redis.sh
	bash scripts/install-chromium.sh

# Rebuilt when pyproject.toml changes.
$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
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
