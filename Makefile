# DotMac — every command a developer or CI needs. `make run` and `make test` install first.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.9
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml uv.lock | sha1sum | cut -c1-12)
STAGE ?= prod
ARTIFACT_BUCKET ?=
ARTIFACT_PREFIX ?= dotmac/$(STAGE)
CODE := layers functions infra localstack/devcloud cli
PYTEST_ARGS ?=

.PHONY: setup run test test-unit test-integration test-e2e lint fmt bench load fuzz clean \
        localstack-up localstack-down render deploy

setup: $(STAMP) ## create .venv and install the locked dependencies

$(STAMP): pyproject.toml uv.lock
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@test -x $(BIN)/uv || $(BIN)/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	$(BIN)/uv sync --frozen --quiet
	@rm -f $(VENV)/.installed-* && touch $@

run: setup ## start the whole platform locally (emulator :4566, API :8000); Ctrl-C stops it
	$(BIN)/python -m devcloud

test: setup ## unit + integration + e2e tests
	$(BIN)/pytest -n 2 $(PYTEST_ARGS)

test-unit: setup
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

test-integration: setup
	$(BIN)/pytest tests/integration $(PYTEST_ARGS)

test-e2e: setup
	$(BIN)/pytest tests/e2e $(PYTEST_ARGS)

lint: setup ## ruff, mypy (disallow_untyped_defs on shipped code), cfn-lint on the AWS template
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy $(CODE)
	@mkdir -p build && $(BIN)/python -m infra render -o build/template.json
	$(BIN)/cfn-lint build/template.json

fmt: setup ## format and autofix
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: setup ## one table of ratios vs DESIGN §10 bars (BILLING_BENCH_SIZES=100,1000,10000 for the big run)
	$(BIN)/python bench/run.py

load: setup ## 60 s locust load on the local platform: p50/p95/p99, req/s, errors (LOAD_SECONDS, LOAD_USERS)
	$(BIN)/python bench/load.py

fuzz: setup ## schemathesis on every app's OpenAPI document, local platform (FUZZ_EXAMPLES=100 per operation)
	$(BIN)/python tests/fuzz/run.py

render: setup ## write the CloudFormation template to build/template.json
	@mkdir -p build && $(BIN)/python -m infra render -o build/template.json

deploy: setup render ## package and deploy to AWS (needs AWS credentials and ARTIFACT_BUCKET)
	@test -n "$(ARTIFACT_BUCKET)" || (echo "set ARTIFACT_BUCKET=<an S3 bucket you own>"; exit 2)
	$(BIN)/python -m infra package build/artifacts
	$(BIN)/aws s3 sync build/artifacts s3://$(ARTIFACT_BUCKET)/$(ARTIFACT_PREFIX)/
	$(BIN)/aws cloudformation deploy --template-file build/template.json \
	  --stack-name dotmac-$(STAGE) --capabilities CAPABILITY_NAMED_IAM \
	  --parameter-overrides Stage=$(STAGE) ArtifactBucket=$(ARTIFACT_BUCKET) ArtifactPrefix=$(ARTIFACT_PREFIX)

localstack-up: setup ## (Docker users) start LocalStack and run the platform against it
	docker compose -f localstack/docker-compose.yml up -d --wait
	DOTMAC_EXTERNAL_ENDPOINT=http://localhost:4566 $(BIN)/python -m devcloud

localstack-down:
	docker compose -f localstack/docker-compose.yml down

clean: ## remove the venv, build output and caches
	rm -rf $(VENV) build .mypy_cache .ruff_cache .pytest_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
