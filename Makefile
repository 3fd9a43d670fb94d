# 统一认证登录平台 — the two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
HOST   ?= 127.0.0.1
PORT   ?= 8443
# `make run` serves TLS itself with the development PKI of certs/dev (see certs/README.md).
DEV_ENV := IDP_ISSUER=https://localhost:$(PORT) IDP_UKEY_TRUST=certs/dev/trust.toml \
           IDP_TLS_CERT=certs/dev/server.pem IDP_TLS_KEY=certs/dev/server.key.pem

# The relying parties of `make run` use the same development server certificate (localhost).
RP_TLS  := --cert certs/dev/server.pem --key certs/dev/server.key.pem

.PHONY: run test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

## make run: install, create the development CA and certificates, the SQLite database, keys and
## demo data, then start the provider with TLS (UKey logins need it) on https://localhost:$(PORT)
## and the two relying parties on https://localhost:8601 and :8602. REQUESTS_CA_BUNDLE lets the
## provider's back-channel logout notices trust the development CA of the relying parties.
run: $(STAMP)
	$(BIN)/idp certs init
	$(DEV_ENV) $(BIN)/idp init --demo
	@echo
	@echo "  统一认证登录平台 is starting at  https://localhost:$(PORT)/login"
	@echo "  Discovery:   https://localhost:$(PORT)/.well-known/openid-configuration"
	@echo "  (the TLS certificate is from the development CA: trust certs/dev/root.pem, or accept the warning)"
	@echo "  Phone login: 手机号码 13800000000  密码 Demo@2026"
	@echo "               SMS codes are written to instance/sms-outbox.jsonl (tail -f it)."
	@echo "  UKey login:  import certs/dev/enterprises/demo.p12 (password: demo) into your browser:"
	@echo "               Chrome/Chromium: 设置 → 隐私和安全 → 安全 → 管理证书 → 您的证书 → 导入;"
	@echo "               Firefox: 设置 → 隐私与安全 → 证书 → 查看证书 → 您的证书 → 导入."
	@echo "               Then choose the 「UKey登录」 tab and press 【UKey登录】."
	@echo "  Other certificates to try (same password): certs/dev/enterprises/{expired,not-yet-valid,revoked,untrusted,unregistered}.p12"
	@echo "  Registration: log in with unregistered.p12 → 物业企业注册 → 下一步 → 否 → the form (S03–S06)."
	@echo "  District centre (浦东新区): 手机号码 13800000001  密码 Demo@2026 → 区中心审核 (reviews, 物业区域)."
	@echo "  业委会注册 (no login): https://localhost:$(PORT)/register/committee (areas: 和谐花园, 阳光苑一期 …)."
	@echo "  操作员管理 (UKey login → home): 增加 with a pair of config/phone-sandbox.toml, e.g. 操作员一 13900000011;"
	@echo "               the initial password arrives in the SMS outbox. 实名认证申请: https://localhost:$(PORT)/staff/apply"
	@echo "  平台管理:    https://localhost:$(PORT)/admin — 手机号码 13800000002  密码 Demo@2026, then the 动态口令 of"
	@echo "               .venv/bin/python -c \"import pyotp; print(pyotp.TOTP('DEMOADMINDEMOADMINDEMOADMIN23456').now())\""
	@echo
	@echo "  Relying parties: 上海市商品住房维修资金管理系统 https://localhost:8601/  上海市物业监管平台及招投标系统 https://localhost:8602/"
	@echo
	RP_ENV="RP_ISSUER=https://localhost:$(PORT) RP_CA_BUNDLE=certs/dev/root.pem"; \
	env $$RP_ENV $(BIN)/python -m relying_parties.repair_fund serve --port 8601 $(RP_TLS) & \
	env $$RP_ENV $(BIN)/python -m relying_parties.supervision serve --port 8602 $(RP_TLS) & \
	trap 'kill $$(jobs -p) 2>/dev/null' EXIT INT TERM; \
	REQUESTS_CA_BUNDLE=certs/dev/root.pem $(DEV_ENV) $(BIN)/idp serve --bind $(HOST):$(PORT)

## make test: lint, type-check and run the whole suite (SQLite and PostgreSQL), on every core
## (pytest-xdist: each worker has its own databases, ports, browser and Redis key prefix).
test: $(STAMP) lint
	$(BIN)/pytest -q -n auto

lint: $(STAMP)
	$(BIN)/ruff check idp relying_parties tests
	$(BIN)/mypy

## make bench: the endpoint benchmark (needs wrk; see README).
bench: $(STAMP)
	$(BIN)/python tests/bench/bench_endpoints.py

clean:
	rm -rf $(VENV) instance .pytest_cache .mypy_cache .ruff_cache
