# cro-exporter: `make run` runs the exporter-controller, `make test` runs every test.

GO      ?= go
BIN     := bin/cro-exporter
VERSION := $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
# make run keeps its state in the work tree, so it needs no root.
RUN_ARGS ?= --state.dir=$(CURDIR)/.state
# staticcheck, pinned; go run fetches it through the module proxy and
# leaves go.mod alone.
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2

.PHONY: build run test lint bench update-golden tools bench-tools clean

# A static binary: it runs on any Linux of the architecture, and without
# libc mapped in, it stays a megabyte smaller in memory.
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/cro-exporter

run: build
	./$(BIN) $(RUN_ARGS) $(ARGS)

# -p 1: packages one at a time, so that one package's holders do not move
# MemAvailable or the CPU under another's timing and give-way tests.
test: tools lint
	promtool test rules alerts/tests/*.yml
	$(GO) test -race -count=1 -p 1 ./...

lint: tools
	@out=$$(gofmt -l $$(git ls-files '*.go')); [ -z "$$out" ] || { echo "gofmt needed: $$out"; exit 1; }
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...
	$(GO) mod tidy -diff
	promtool check rules alerts/cro-exporter.rules.yml
	promtool check config examples/prometheus.yml
	$(GO) test -count=1 -run '^TestDashboardFollowsStyle$$' ./cmd/cro-exporter

bench: build bench-tools
	$(GO) test -run '^$$' -bench . -benchmem ./...
	$(GO) run ./cmd/cro-bench --binary $(BIN)

# Regenerates the golden /metrics files of the end-to-end test.
update-golden:
	$(GO) test ./cmd/cro-exporter -run TestGolden -update

# ensure installs Debian package $(1) when command $(2) is missing: the
# tests need promtool and a real Prometheus, the bench wrk and node_exporter.
define ensure
	@command -v $(2) >/dev/null || { \
		if [ "$$(id -u)" = 0 ]; then \
			echo "installing Debian package $(1)"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(1) >/dev/null; \
		else \
			echo "$(2) is missing: run sudo apt-get install $(1)"; exit 1; \
		fi; }
endef

tools:
	$(call ensure,prometheus,promtool)

bench-tools: tools
	$(call ensure,wrk,wrk)
	$(call ensure,prometheus-node-exporter,prometheus-node-exporter)
	$(call ensure,stress-ng,stress-ng)

clean:
	rm -rf bin .state
