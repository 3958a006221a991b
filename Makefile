PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test bench lint

# Bootstrap the virtualenv from the pinned runtime requirements (again whenever they change).
$(BIN)/.deps: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -r requirements.txt
	touch $@

# The test and dev tools on top (again whenever either requirements file changes).
$(BIN)/.dev-deps: requirements-dev.txt $(BIN)/.deps
	$(BIN)/pip install -q -r requirements-dev.txt
	touch $@

## run: migrate, seed the demo, start the console (+ dispatcher) on http://127.0.0.1:5000, the receiver on :8443
## and an SMTP catcher for alert emails on :8025 (instance/mail/); a paused endpoint is probed at least every 15 s
run: $(BIN)/.deps
	$(BIN)/flask db upgrade
	$(BIN)/flask qlar demo
	QLAR_ALLOW_PRIVATE_TARGETS=1 QLAR_SMTP_URL=$${QLAR_SMTP_URL:-smtp://127.0.0.1:8025} \
	QLAR_PROBE_MAX_SECONDS=$${QLAR_PROBE_MAX_SECONDS:-15} \
	$(BIN)/flask qlar serve --host 127.0.0.1 --port 5000 --receiver-port 8443 --mail-port 8025

## test: the whole test suite
test: $(BIN)/.dev-deps
	$(BIN)/python -m pytest

## bench: the performance figures (bench/run.py), as `name: value` lines
bench: $(BIN)/.dev-deps
	cd bench && ../$(BIN)/python run.py

lint: $(BIN)/.dev-deps
	$(BIN)/ruff check .
