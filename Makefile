# Local development and CI entry points. `make demo` and `make test` work on a fresh clone.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
PYTEST_ARGS ?=
WORKERS ?= 2
THREADS ?= 8

.PHONY: install migrate demo serve dev worker worker-gpu worker-cpu beat lint format test test-stress bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

install: $(VENV)/.installed

migrate: install
	$(BIN)/python manage.py migrate --noinput

# Seeds a small offline study (SQLite unless DATABASE_URL is set) and serves it, for local use only.
demo: export DEBUG = 1
demo: migrate
	$(BIN)/python manage.py demo --base-url http://$(HOST):$(PORT)
	$(BIN)/python manage.py runserver $(HOST):$(PORT)

# The web app as a real study runs it: production settings (DEBUG=0; SECRET_KEY required) under
# gunicorn's threaded workers. On a public address put nginx in front (docs/deployment.md).
# `DEBUG=1 make serve` is `make dev`.
serve: migrate
ifeq ($(DEBUG),1)
	$(BIN)/python manage.py runserver $(HOST):$(PORT)
else
	DEBUG=0 $(BIN)/gunicorn studyapp.wsgi:application --bind $(HOST):$(PORT) --workers $(WORKERS) \
		--worker-class gthread --threads $(THREADS) --timeout 60 --access-logfile -
endif

# Django's development server with DEBUG=1 (tracebacks in the browser): never on a public address.
dev: export DEBUG = 1
dev: migrate
	$(BIN)/python manage.py runserver $(HOST):$(PORT)

# One worker on both queues, for a single machine. On GPU hosts use worker-gpu once per GPU.
worker: install
	$(BIN)/celery -A studyapp worker -Q gpu,cpu --pool=solo --prefetch-multiplier=1 -l info

worker-gpu: install
	$(BIN)/celery -A studyapp worker -Q gpu --pool=solo --prefetch-multiplier=1 -l info -n gpu$${CUDA_VISIBLE_DEVICES:-0}@%h

worker-cpu: install
	$(BIN)/celery -A studyapp worker -Q cpu --concurrency=2 --prefetch-multiplier=1 -l info -n cpu@%h

# The periodic reconciler that re-queues batches whose worker vanished. Run exactly one per deployment.
beat: install
	mkdir -p var
	$(BIN)/celery -A studyapp beat -l info -s var/celerybeat-schedule

# ruff, pinned in requirements.txt and configured in pyproject.toml.
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# Browser tests drive Debian's Chromium (apt-get install chromium); CI installs it.
test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Worker, assignment and browser tests three times on a loaded machine (needs DATABASE_URL, CELERY_BROKER_URL).
test-stress: install
	PYTHON=$(BIN)/python bash .ci/stress

bench: install
	for b in bench/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) db.sqlite3 media var staticfiles .pytest_cache
