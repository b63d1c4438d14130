# Ratify: `make run` starts the game, `make test` runs lint and the test suite.
PY := .venv/bin/python
VENV_STAMP := .venv/.installed

.PHONY: setup run lint test bench bench-load fmt services

$(VENV_STAMP): pyproject.toml
	python3 -m venv .venv
	.venv/bin/pip install -q --upgrade pip
	.venv/bin/pip install -q -e '.[dev]'
	touch $(VENV_STAMP)

setup: $(VENV_STAMP)
	$(PY) manage.py migrate --noinput
	$(PY) manage.py load_scenarios

run: setup
	@echo "Ratify is running at http://127.0.0.1:8000/"
	exec $(PY) -m config.serve -b 127.0.0.1 -p 8000 config.asgi:application

lint: $(VENV_STAMP)
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy .

# PostgreSQL, Redis and Chromium: started or installed when missing (see .ci/ensure-services).
services:
	.ci/ensure-services

test: setup lint services
	.venv/bin/pytest

bench: $(VENV_STAMP)
	$(PY) bench/engine.py

# Websocket load: 200 games x 8 sockets at 1 command/game/s, then saturation, against three
# baselines in the same run (bench/README.md). About 10 minutes.
bench-load: $(VENV_STAMP)
	$(PY) bench/ws_load.py --saturate

fmt: $(VENV_STAMP)
	.venv/bin/ruff format .
	.venv/bin/ruff check --fix .
