# 统一认证登录平台 — the two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
HOST   ?= 127.0.0.1
PORT   ?= 5000

.PHONY: run test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

## make run: install, create the SQLite database, keys and demo data, start the provider.
run: $(STAMP)
	$(BIN)/idp init --demo
	@echo
	@echo "  统一认证登录平台 is starting at  http://localhost:$(PORT)/login"
	@echo "  Discovery:   http://localhost:$(PORT)/.well-known/openid-configuration"
	@echo "  Demo login:  手机号码 13800000000  密码 Demo@2026"
	@echo "  SMS codes are written to instance/sms-outbox.jsonl (tail -f it)."
	@echo
	IDP_ISSUER=http://localhost:$(PORT) $(BIN)/idp serve --bind $(HOST):$(PORT)

## make test: lint, type-check and run the whole suite (SQLite and PostgreSQL).
test: $(STAMP) lint
	$(BIN)/pytest -q

lint: $(STAMP)
	$(BIN)/ruff check idp tests
	$(BIN)/mypy

## make bench: the endpoint benchmark (needs wrk; see README).
bench: $(STAMP)
	$(BIN)/python tests/bench/bench_endpoints.py

clean:
	rm -rf $(VENV) instance .pytest_cache .mypy_cache .ruff_cache
