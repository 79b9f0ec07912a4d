# The one entry point for developers and CI. `make dev` runs the stack, `make test` proves it.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

INFRA := .venv-infra
PROJECT ?=
REGION ?= us-central1
TF := terraform -chdir=terraform

.PHONY: install dev test screenshots test-unit test-integration lint lint-infra fmt bench chaos fuzz deploy deploy-secrets tf-init clean

$(STAMP): functions/requirements.txt requirements-dev.txt pyproject.toml clients/python/pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check \
		-r functions/requirements.txt -r requirements-dev.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e . -e ./clients/python
	@touch $(STAMP)

install: $(STAMP)

dev: install
	$(BIN)/lote-stack

# The browser tests drive Debian's Chromium (Playwright's own browser download needs a CDN).
CHROMIUM := /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

$(CHROMIUM):
	$(SUDO) apt-get install -y --no-install-recommends chromium || \
		{ $(SUDO) apt-get update && $(SUDO) apt-get install -y --no-install-recommends chromium; }

test: install $(CHROMIUM)
	$(BIN)/pytest tests

# The README's screenshots of the web app, taken by its browser tests.
screenshots: install $(CHROMIUM)
	LOTE_SCREENSHOTS_DIR=docs/screenshots $(BIN)/pytest tests/integration/test_web_app.py -k "stages_a_photo or follows_a_batch"

test-unit: install
	$(BIN)/pytest tests/unit

test-integration: install $(CHROMIUM)
	$(BIN)/pytest tests/integration

lint: install
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy
	terraform fmt -check -recursive terraform
	$(BIN)/python infra/check_wheel.py

$(INFRA)/.installed: requirements-infra.txt
	@test -x $(INFRA)/bin/python || $(PY) -m venv $(INFRA)
	$(INFRA)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-infra.txt
	@touch $@

# checkov offline (--skip-download): every finding is fixed or suppressed in place with a reason.
lint-infra: $(INFRA)/.installed
	terraform fmt -check -recursive terraform
	$(INFRA)/bin/checkov -d terraform --framework terraform --quiet --compact --skip-download

# `make deploy PROJECT=my-project`: state in gs://PROJECT-lote-tfstate (created once), then apply.
deploy: tf-init
	$(TF) apply -var project_id=$(PROJECT) -var region=$(REGION)

# First deploy only: the secrets alone, so they can get values before the functions need them.
deploy-secrets: tf-init
	$(TF) apply -var project_id=$(PROJECT) -var region=$(REGION) -target=google_secret_manager_secret.s

tf-init:
	@test -n "$(PROJECT)" || { echo "usage: make deploy PROJECT=my-project [REGION=us-central1]"; exit 2; }
	gcloud storage buckets describe gs://$(PROJECT)-lote-tfstate --project=$(PROJECT) >/dev/null 2>&1 || \
		gcloud storage buckets create gs://$(PROJECT)-lote-tfstate --project=$(PROJECT) --location=$(REGION) \
			--uniform-bucket-level-access --public-access-prevention
	$(TF) init -input=false -backend-config=bucket=$(PROJECT)-lote-tfstate -backend-config=prefix=lote

fmt: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .
	terraform fmt -recursive terraform

bench: install
	$(BIN)/python -m bench.run

# A longer schemathesis campaign than `make test` runs; its summary goes into bench/RESULTS.md.
fuzz: install
	$(BIN)/python -m bench.fuzz

# Kills, an api death after commits, forced duplicate deliveries; then every promise is checked
# (a few minutes). Writes its section of bench/RESULTS.md; tests/integration/test_chaos.py is the small one.
chaos: install
	$(BIN)/python -m bench.chaos

clean:
	rm -rf $(VENV) $(INFRA) .lote .mypy_cache .ruff_cache .pytest_cache
