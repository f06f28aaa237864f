# Two commands on a fresh clone: `make demo` and `make test`. Both create .venv and install first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
DEMO_CITIZENS ?= 3000
HOST ?= 127.0.0.1
PORT ?= 5000
FEDERATION_CITIZENS ?= 300
FEDERATION_PORT ?= 5100

.PHONY: demo federation-demo test install lint bench clean

$(STAMP): setup.cfg pyproject.toml partner_sdk/pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed (set PYTHON=...)")'
	@echo "installing into $(VENV) (a few minutes the first time; pip's output goes to $(VENV)/install.log)"
	@$(PYTHON) -m venv $(VENV)
	@{ $(BIN)/python -m pip install --upgrade pip \
	   && $(BIN)/python -m pip install -e 'partner_sdk[scan]' -e '.[dev]'; } > $(VENV)/install.log 2>&1 \
	 || { tail -n 30 $(VENV)/install.log; echo "install failed; pip's whole output: $(VENV)/install.log"; exit 1; }
	@touch $(STAMP)
	@echo "installed into $(VENV)"

install: $(STAMP)

# `make demo PORT=5001` serves on another port; the port is checked before anything is seeded.
demo: $(STAMP)
	@$(BIN)/citycredit serve --check --host $(HOST) --port $(PORT)
	CITYCREDIT_ENV=development $(BIN)/citycredit db upgrade
	CITYCREDIT_ENV=development $(BIN)/citycredit demo seed --citizens $(DEMO_CITIZENS)
	@echo
	@echo "  City overview (中文):     http://$(HOST):$(PORT)/   (English: /?lang=en)"
	@echo "  Partner API docs:         http://$(HOST):$(PORT)/api/docs   (OpenAPI: /api/openapi.json)"
	@echo "  City keys (JWKS):         http://$(HOST):$(PORT)/.well-known/jwks.json"
	@echo "  Venue examples:           .venv/bin/python examples/library_desk.py --id <an ID printed above>"
	@echo "  Admin (中文; English link on every page): http://$(HOST):$(PORT)/admin   (accounts printed above)"
	@echo "  Citizen's phone page:     http://$(HOST):$(PORT)/me   (sign in with an ID number printed above;"
	@echo "                            the demo shows the one-time code on screen and in this log)"
	@echo
	@echo "  In another terminal, for the tour, the examples and citycredit-verify:"
	@echo "    export CITYCREDIT_BASE_URL=http://$(HOST):$(PORT)"
	@echo
	CITYCREDIT_ENV=development CITYCREDIT_DEMO_MODE=1 $(BIN)/citycredit serve --host $(HOST) --port $(PORT)

# Three partner cities and a coordinator on loopback (ports FEDERATION_PORT and the next three);
# it prints the URLs, accounts and the commands to try, and stops everything on Ctrl-C.
federation-demo: $(STAMP)
	$(BIN)/citycredit federation demo --citizens $(FEDERATION_CITIZENS) --ports $(FEDERATION_PORT)

test: $(STAMP)
	$(BIN)/python -m tests.run

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-logo

bench: $(STAMP)
	$(BIN)/python bench/recompute.py

clean:
	rm -rf $(VENV) instance .pytest_cache .mypy_cache .ruff_cache
