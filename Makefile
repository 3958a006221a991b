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

PORT ?= 5000
RECEIVER_PORT ?= 8443
MAIL_PORT ?= 8025

## run: migrate, seed the demo, start the console (+ dispatcher) on http://127.0.0.1:$(PORT) (5000), the receiver
## on :$(RECEIVER_PORT) (8443) and an SMTP catcher for alert emails on :$(MAIL_PORT) (8025; instance/mail/);
## a paused endpoint is probed at least every 15 s. Other ports: make run PORT=5050 RECEIVER_PORT=9443
run: $(BIN)/.deps
	$(BIN)/flask db upgrade
	$(BIN)/flask qlar demo --port $(PORT) --receiver-port $(RECEIVER_PORT)
	QLAR_ALLOW_PRIVATE_TARGETS=1 QLAR_SMTP_URL=$${QLAR_SMTP_URL:-smtp://127.0.0.1:$(MAIL_PORT)} \
	QLAR_PROBE_MAX_SECONDS=$${QLAR_PROBE_MAX_SECONDS:-15} \
	$(BIN)/flask qlar serve --host 127.0.0.1 --port $(PORT) --receiver-port $(RECEIVER_PORT) --mail-port $(MAIL_PORT)

## test: the whole test suite. Python's bytecode caches are written even where PYTHONDONTWRITEBYTECODE is set:
## otherwise each of the 4 xdist workers, and each process a test starts, compiles every module and rewrites every
## test's asserts again on every run (3 s of CPU each).
test: $(BIN)/.dev-deps
	PYTHONDONTWRITEBYTECODE= $(BIN)/python -m pytest

## bench: the performance figures (bench/run.py), as `name: value` lines
bench: $(BIN)/.dev-deps
	cd bench && ../$(BIN)/python run.py

lint: $(BIN)/.dev-deps
	$(BIN)/ruff check .
