# ENRS — the two commands of the README are `make run` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
UV := $(VENV)/bin/uv
UV_VERSION := 0.13.8
HOST ?= 127.0.0.1
PORT ?= 8000
SCALE ?= small

# Tests run on real PostgreSQL and Redis (defaults: the local services).
TEST_ENV := DJANGO_SETTINGS_MODULE=enrs.settings.test

# Chart.js for the dashboards, from the npm registry at install time (pinned in package-lock.json, never
# committed); without it the dashboards show their tables only.
STATIC_VENDOR := enrs/dashboards/static/dashboards/vendor

.PHONY: static-vendor help install run test lint format typecheck migrations-check pytest services worker beat lock seed clean

help:
	@echo "make run     — installe, migre, charge la démo et sert le portail sur http://$(HOST):$(PORT)"
	@echo "make test    — installe, démarre PostgreSQL et Redis, puis ruff, makemigrations --check, mypy, pytest"
	@echo "make worker  — lance un worker Celery (files default, mssante, dicom, dmp)"
	@echo "make beat    — lance l'ordonnanceur Celery beat"
	@echo "make lock    — recalcule requirements.lock depuis pyproject.toml"

$(VENV)/.installed: pyproject.toml requirements.lock
	@command -v $(PYTHON) >/dev/null || { echo "Python 3.11 est requis ($(PYTHON) introuvable)."; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"
	VIRTUAL_ENV=$(VENV) $(UV) pip sync --quiet --require-hashes requirements.lock
	touch $@

install: $(VENV)/.installed

lock:
	test -x $(UV) || { $(PYTHON) -m venv $(VENV) && $(PY) -m pip install --quiet "uv==$(UV_VERSION)"; }
	$(UV) pip compile pyproject.toml --extra dev --generate-hashes --python-version 3.11 -o requirements.lock

$(STATIC_VENDOR)/chart.umd.min.js: package.json package-lock.json
	@if command -v npm >/dev/null; then \
		npm ci --ignore-scripts --no-audit --no-fund && \
		cp node_modules/chart.js/dist/chart.umd.min.js $(STATIC_VENDOR)/chart.umd.min.js && \
		cp node_modules/chart.js/LICENSE.md $(STATIC_VENDOR)/chart.js-LICENSE.md; \
	else \
		echo "npm est absent : les tableaux de bord n'afficheront que leurs tableaux (pas de graphiques)."; \
	fi

static-vendor: $(STATIC_VENDOR)/chart.umd.min.js

run: install static-vendor
	$(PY) manage.py migrate --no-input
	$(PY) manage.py seed_demo --scale $(SCALE) --if-empty --force
	$(PY) manage.py seed_messagerie_demo --force
	$(PY) manage.py runserver $(HOST):$(PORT)

seed: install
	$(PY) manage.py seed_demo --scale $(SCALE)

services:
	bash scripts/ensure-services.sh

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

migrations-check: install
	$(TEST_ENV) $(PY) manage.py makemigrations --check --dry-run

typecheck: install
	$(VENV)/bin/mypy .

pytest: install
	$(TEST_ENV) $(VENV)/bin/pytest $(PYTEST_ARGS)

test: install services lint migrations-check typecheck pytest

worker: install
	$(VENV)/bin/celery -A enrs worker --loglevel INFO -Q default,mssante,dicom,dmp

beat: install
	$(VENV)/bin/celery -A enrs beat --loglevel INFO --schedule var/celerybeat-schedule

clean:
	rm -rf $(VENV) var .mypy_cache .ruff_cache .pytest_cache
