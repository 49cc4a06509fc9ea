# The two set-up commands of the README: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: run test lint bench vendor clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.run-deps: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.test-deps: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[test]'
	touch $@ $(VENV)/.run-deps

## Install into .venv if needed, migrate, start web + worker + scheduler (embedded defaults).
run: $(VENV)/.run-deps
	$(BIN)/smsops run

## Install test dependencies and run the whole suite (lint and types first: they are quick).
test: $(VENV)/.test-deps
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/python -m pytest -n auto

lint: $(VENV)/.test-deps
	$(BIN)/ruff check .
	$(BIN)/mypy

## Refresh the vendored htmx and Redoc (/api/docs) from the npm registry (never a CDN at run time),
## and axe-core, which only the browser tests load (the accessibility check, issue #14).
vendor:
	cd $$(mktemp -d) && npm pack htmx.org@2 >/dev/null && tar xzf htmx.org-*.tgz && \
	  cp package/dist/htmx.min.js $(CURDIR)/app/static/vendor/htmx.min.js
	cd $$(mktemp -d) && npm pack redoc@2 >/dev/null && tar xzf redoc-*.tgz && \
	  cp package/bundles/redoc.standalone.js package/bundles/redoc.standalone.js.LICENSE.txt \
	  package/LICENSE \
	  $(CURDIR)/app/static/vendor/ && mv $(CURDIR)/app/static/vendor/LICENSE $(CURDIR)/app/static/vendor/redoc.LICENSE
	# Its one CDN reference (the "by Redocly" logo) becomes an empty inline image.
	sed -i "s|https://cdn.redoc.ly/redoc/logo-mini.svg|data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg'/%3E|" \
	  $(CURDIR)/app/static/vendor/redoc.standalone.js
	cd $$(mktemp -d) && npm pack axe-core@4 >/dev/null && tar xzf axe-core-*.tgz && \
	  cp package/axe.min.js $(CURDIR)/tests/e2e/vendor/axe.min.js && \
	  cp package/LICENSE $(CURDIR)/tests/e2e/vendor/axe.LICENSE

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
