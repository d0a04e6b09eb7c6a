SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DELETE_ON_ERROR:
MAKEFLAGS += --warn-undefined-variables
MAKEFLAGS += --no-builtin-rules

BUF := node_modules/.bin/buf
TSC := node_modules/.bin/tsc
JEST := node_modules/.bin/jest
RELEASED_IMAGE := proto/released.binpb
# Debian's interpreter, which sees python3-grpcio; a python3 earlier on PATH may not.
PYTHON := /usr/bin/python3
TARGET ?=
SERVICE ?=

.PHONY: help
help: ## List the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | expand -t 20

node_modules: package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch node_modules

.PHONY: install
install: node_modules ## Install the npm packages from the lock file

.PHONY: generate
generate: node_modules ## Regenerate gen/ from proto/ (buf + ts-proto)
	$(BUF) generate

.PHONY: check-generated
check-generated: node_modules ## Fail when gen/ differs from what proto/ generates
	scripts/check-generated.sh

.PHONY: lint
lint: node_modules ## buf lint, buf format check and the TypeScript type check
	$(BUF) lint
	$(BUF) format -d --exit-code
	$(TSC) -p tsconfig.json --noEmit

.PHONY: typecheck
typecheck: node_modules ## TypeScript type check only
	$(TSC) -p tsconfig.json --noEmit

.PHONY: breaking
breaking: node_modules ## buf breaking against the released contract image
	$(BUF) breaking --against $(RELEASED_IMAGE)

.PHONY: release-contract
release-contract: node_modules ## Deliberately record proto/ as the released contract (commit the image)
	$(BUF) build -o $(RELEASED_IMAGE)

.PHONY: build
build: node_modules ## Compile TypeScript into dist/
	$(TSC) -p tsconfig.json

.PHONY: pyclient
pyclient: node_modules ## Generate the Python client stubs from proto/ into build/pygen
	scripts/gen-python.sh build/pygen

.PHONY: pyhealth
pyhealth: pyclient ## gRPC health check from Python: make pyhealth TARGET=host:port [SERVICE=uims.broker.v1.BrokerService]
	$(if $(TARGET),,$(error set TARGET=host:port))
	$(PYTHON) test/python/health_check.py --stubs build/pygen --target '$(TARGET)' --service '$(SERVICE)'

.PHONY: test
test: lint check-generated breaking build ## Everything CI runs: contract checks, type check, all jest suites
	$(JEST) --ci

.PHONY: test-contract
test-contract: build ## Contract tests only
	$(JEST) --ci test/contract

.PHONY: run
run: build ## Start the whole mesh locally (embedded store, or Redis when REDIS_URL is set)
	node dist/cli/main.js up

K8S_OVERLAYS := dev prod
IMAGE ?= uims:$(shell node -p "require('./package.json').version")

.PHONY: k8s
k8s: ## Render each Kubernetes overlay with kubectl kustomize into build/k8s/<overlay>.yaml
	@mkdir -p build/k8s
	@for overlay in $(K8S_OVERLAYS); do kubectl kustomize k8s/overlays/$$overlay > build/k8s/$$overlay.yaml; echo "build/k8s/$$overlay.yaml"; done

.PHONY: images
images: ## Build the container image (IMAGE=uims:<version>); needs a docker engine
	@docker info >/dev/null 2>&1 || { echo "images: docker has no engine here (docker info fails), so the image cannot be built on this machine; run: docker build -t $(IMAGE) ." >&2; exit 1; }
	docker build -t $(IMAGE) .

.PHONY: bench
bench: build ## Measure the mesh end to end and against a NATS baseline (results in bench/results/)
	node dist/bench/main.js

.PHONY: clean
clean: ## Remove build output
	rm -rf dist build
