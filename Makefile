# Taskfleet. `make demo` shows it working, `make test` proves it; both install what they need first.
# Every target runs on the Node 24 that npm installs into node_modules (the `node` dev dependency),
# whatever Node the machine has.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
export PATH := $(CURDIR)/node_modules/.bin:$(PATH)
# Tests and tools run the packages from source (their `source` export condition), not from dist/.
export NODE_OPTIONS := --conditions=source

NODE_TEST := node --test --test-reporter=spec
GLOBAL_SETUP := --test-global-setup=test/support/global-setup.ts
UNIT_TESTS := 'worker/src/**/*.test.ts' 'operator/src/**/*.test.ts' 'test/stack/**/*.test.ts' 'demo/**/*.test.ts'
INTEGRATION_TESTS := 'test/integration/**/*.test.ts' 'test/conformance/**/*.test.ts'
E2E_TESTS := $(wildcard test/e2e/*.test.ts test/e2e/*/*.test.ts)

.PHONY: help
help: ## list the targets
	@awk -F':.*## ' '/^[a-z-]+:.*## /{printf "  make %-17s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

node_modules/.package-lock.json: package.json package-lock.json worker/package.json operator/package.json
	npm ci --no-audit --no-fund

.PHONY: deps
deps: node_modules/.package-lock.json ## install npm dependencies (and Node 24) when the lockfile changed

.PHONY: prerequisites
prerequisites: ## check (and as root, install) the Debian packages the stack needs
	bash test/stack/prerequisites.sh

.PHONY: build
build: deps ## compile worker/ and operator/ to dist/ (with the Redis Lua scripts)
	npm run build

.PHONY: lint
lint: deps ## biome (lint + format check), the TypeScript type check, and crds/ up to date
	biome check .
	tsc -p tsconfig.json --noEmit
	tsc -p worker/src/console/page --noEmit
	node operator/src/api/generate-crds.ts --check

.PHONY: format
format: deps ## apply biome's formatting and safe fixes
	biome check --write .

.PHONY: stack-build
stack-build: deps prerequisites ## build the real components of the test stack into the cache
	bash test/stack/build.sh all

.PHONY: stack
stack: stack-build ## run the test stack in the foreground (Ctrl-C stops it)
	node test/stack/supervisor.ts $(COMPONENTS)

.PHONY: test
test: lint build test-unit test-integration test-e2e ## everything CI runs

.PHONY: test-unit
test-unit: deps ## fast tests of pure logic, no stack
	$(NODE_TEST) $(UNIT_TESTS)

.PHONY: test-integration
test-integration: stack-build ## tests against real Redis, Kafka, Kubernetes and Helm
	$(NODE_TEST) $(GLOBAL_SETUP) $(INTEGRATION_TESTS)

.PHONY: test-e2e
test-e2e: stack-build ## the whole loop: operator, workers, scaling
ifeq ($(E2E_TESTS),)
	@echo 'test-e2e: there are no end-to-end tests yet (they arrive with the operator and demo issues)'
else
	$(NODE_TEST) $(GLOBAL_SETUP) $(E2E_TESTS)
endif

.PHONY: demo
demo: stack-build ## bursts of tasks scale a worker fleet 0 -> N -> 0, live; writes docs/demo.svg (~3 min; Ctrl-C stops it)
	node demo/main.ts

.PHONY: crds
crds: deps ## generate crds/ from the TaskQueue schema (operator/src/api/schema.ts)
	node operator/src/api/generate-crds.ts

.PHONY: bench
bench: bench-worker bench-kafka bench-operator ## run the benchmarks and rewrite their sections of docs/benchmarks.md

.PHONY: bench-worker
# The worker and Kafka benchmarks measure the compiled package, as users run it: they build it first, and
# run without the source condition (NODE_OPTIONS emptied; they refuse to run the sources).
bench-worker: build ## worker vs BullMQ, a bare Streams loop and Celery 5 (installed into a venv in the cache), 100,000 tasks, and 1/2/4 workers (~8 min; needs redis-server, redis-tools, python3)
	NODE_OPTIONS= node bench/worker.ts --tasks 100000 --concurrency 50 --write

.PHONY: bench-kafka
bench-kafka: stack-build build ## Kafka worker vs bare kafkajs and @platformatic/kafka loops, 100,000 tasks, 12 partitions (~3 min)
	NODE_OPTIONS= node bench/kafka.ts --tasks 100000 --write

.PHONY: bench-operator
bench-operator: stack-build build ## the compiled operator, as the chart runs it: reaction time and capacity (2,000 TaskQueues) on the real control plane (~15 min)
	NODE_OPTIONS= node bench/operator.ts --write

.PHONY: clean
clean: ## remove build output (the stack cache stays: TASKFLEET_CACHE)
	rm -rf worker/dist operator/dist worker/*.tsbuildinfo operator/*.tsbuildinfo
