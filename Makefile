# cro-exporter: `make run` runs the exporter-controller, `make test` runs every test.

GO      ?= go
BIN     := bin/cro-exporter
VERSION := $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
BRANCH  := $(shell git rev-parse --abbrev-ref HEAD 2>/dev/null)
# cro_build_info's version comes from main.version, its branch label from
# prometheus/common/version, which client_golang's version collector reads.
LDFLAGS := -X main.version=$(VERSION) -X github.com/prometheus/common/version.Branch=$(BRANCH)
# make run keeps its state in the work tree, so it needs no root.
RUN_ARGS ?= --state.dir=$(CURDIR)/.state
# staticcheck, pinned; go run fetches it through the module proxy and
# leaves go.mod alone.
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
# nfpm, which builds the .deb and the .rpm, pinned and run the same way.
NFPM := github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.45.2

# The packages' version: git describe, mapped to a version dpkg and rpm
# both order rightly (a Debian version must start with a digit; ~ sorts
# before anything, + after):
#   v1.2.3 (a tag)         -> 1.2.3
#   v1.2.3-4-gabc1234      -> 1.2.3+git4.abc1234 (4 commits past the tag)
#   abc1234 (no v tag yet) -> 0.0.0~git<commit time, UTC, YYYYmmddHHMMSS>.abc1234
#   a dirty tree           -> the same, then +dirty (tagged) or .dirty
#   no git at all          -> 0.0.0~unknown
PKG_VERSION := $(shell \
	d=$$(git describe --tags --always --dirty 2>/dev/null) || { echo 0.0.0~unknown; exit; }; \
	if t=$$(git describe --tags --dirty --match 'v[0-9]*' 2>/dev/null); then \
		echo "$$t" | sed -E 's/^v//; s/-([0-9]+)-g([0-9a-f]+)/+git\1.\2/; s/-dirty$$/+dirty/'; \
	else \
		h=$$(git rev-parse --short HEAD); \
		printf '0.0.0~git%s.%s%s\n' "$$(TZ=UTC git log -1 --format=%cd --date=format-local:%Y%m%d%H%M%S)" \
			"$$h" "$$([ "$$d" = "$${d%-dirty}" ] || echo .dirty)"; \
	fi)
PKG_ARCH := $(shell $(GO) env GOARCH)
# The packages' Maintainer: the last commit's author, unless given.
PKG_MAINTAINER ?= $(shell git log -1 --format='%an <%ae>' 2>/dev/null)
# Reproducible packages and man page: file times and dates are the last
# commit's (nfpm and `cro-exporter generate man` read it).
export SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || echo 0)
# The MSI's ProductVersion, which takes three numbers alone: the package
# version's, less what follows them (1.2.3+git4.abc1234 -> 1.2.3, any
# untagged build 0.0.0). The MSI replaces an installed one of the same
# version, so a rebuild still installs (examples/windows/cro-exporter.wxs).
MSI_VERSION := $(shell echo '$(PKG_VERSION)' | sed -E 's/^([0-9]+\.[0-9]+\.[0-9]+).*/\1/')
# The Windows packages' names in dist/, .msi and .zip.
WINDOWS_DIST := dist/cro-exporter-$(PKG_VERSION)-windows-amd64
# The container image make image builds and saves into dist/.
IMAGE ?= localhost/cro-exporter:$(VERSION)

.PHONY: build build-windows run test lint bench update-golden tools bench-tools clean \
	dist-binary package package-test package-tools image image-tools wine-tools test-windows \
	dist-windows-binary package-windows msi-tools

# A static binary: it runs on any Linux of the architecture, and without
# libc mapped in, it stays a megabyte smaller in memory.
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/cro-exporter

# The Windows build, beside make build's, which make bench measures under
# Wine.
build-windows:
	GOOS=windows GOARCH=amd64 CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN).exe ./cmd/cro-exporter

run: build
	./$(BIN) $(RUN_ARGS) $(ARGS)

# -p 1: packages one at a time, so that one package's holders do not move
# MemAvailable or the CPU under another's timing and give-way tests. The
# Windows build's own tests run under Wine first (test-windows); the live
# tests of cmd/cro-exporter run it under Wine too.
test: tools lint package-test test-windows
	promtool test rules alerts/tests/*.yml
	$(GO) test -race -count=1 -p 1 ./...

lint: tools
	@out=$$(gofmt -l $$(git ls-files '*.go')); [ -z "$$out" ] || { echo "gofmt needed: $$out"; exit 1; }
	$(GO) vet ./...
	GOOS=windows $(GO) vet $(WINDOWS_PKGS)
	$(GO) run $(STATICCHECK) ./...
	t=$$(mktemp -d) && trap 'rm -rf "$$t"' EXIT && GOBIN="$$t" $(GO) install $(STATICCHECK) && \
	GOOS=windows "$$t/staticcheck" $(WINDOWS_PKGS) && \
	GOOS=windows "$$t/staticcheck" -tests=false ./cmd/cro-exporter
	$(GO) mod tidy -diff
	promtool check rules alerts/cro-exporter.rules.yml
	promtool check rules alerts/cloud-idle.rules.yml
	promtool check config examples/prometheus.yml
	t=$$(mktemp) && trap 'rm -f "$$t"' EXIT && \
	printf 'scrape_configs:\n  - job_name: targets\n    file_sd_configs: [{files: ["%s"]}]\n' '$(CURDIR)/examples/targets.yml' >"$$t" && \
	promtool check config "$$t" >/dev/null && echo "examples/targets.yml: valid file_sd targets"
	$(GO) test -count=1 -run '^TestDashboardFollowsStyle$$' ./cmd/cro-exporter

bench: build build-windows bench-tools
	$(GO) test -run '^$$' -bench . -benchmem ./...
	$(GO) run ./cmd/cro-bench --binary $(BIN) --windows-binary $(BIN).exe

# Regenerates the golden /metrics files of the end-to-end test.
update-golden:
	$(GO) test ./cmd/cro-exporter -run TestGolden -update

# The binary the packages and the image ship: make build's, less its
# symbol table and DWARF (-s -w: Debian strips binaries, and Go's stack
# traces do not need them), a third smaller.
dist-binary:
	mkdir -p dist
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '-s -w $(LDFLAGS)' -o dist/cro-exporter ./cmd/cro-exporter

# The .deb and the .rpm of the static binary, into dist/: the files made
# from the CLI (man page, completions, /etc/default/cro-exporter), the unit
# of examples/ with ExecStart= at /usr/bin, the copyright of everything
# linked in and a changelog go to dist/pkg/ first; nfpm.yaml lists it all.
package: dist-binary package-windows
	rm -rf dist/pkg dist/*.deb dist/*.rpm
	mkdir -p dist/pkg
	dist/cro-exporter generate man > dist/pkg/cro-exporter.1
	gzip -9n dist/pkg/cro-exporter.1
	dist/cro-exporter generate bash > dist/pkg/cro-exporter.bash
	dist/cro-exporter generate zsh > dist/pkg/_cro-exporter
	dist/cro-exporter generate fish > dist/pkg/cro-exporter.fish
	dist/cro-exporter generate defaults > dist/pkg/default
	sed '/^Exec/s|/usr/local/bin/cro-exporter|/usr/bin/cro-exporter|' \
		examples/cro-exporter.service > dist/pkg/cro-exporter.service
	grep -qx 'ExecStart=/usr/bin/cro-exporter' dist/pkg/cro-exporter.service
	grep -qx 'ExecStopPost=-/usr/bin/cro-exporter --recover' dist/pkg/cro-exporter.service
	GO=$(GO) sh examples/package/copyright.sh deb > dist/pkg/copyright.deb
	GO=$(GO) sh examples/package/copyright.sh > dist/pkg/copyright.rpm
	gzip -9n < README.md > dist/pkg/README.md.gz
	printf 'cro-exporter (%s) unstable; urgency=medium\n\n  * Built from git commit %s.\n\n -- %s  %s\n' \
		'$(PKG_VERSION)' '$(VERSION)' '$(PKG_MAINTAINER)' "$$(date -R -u -d @$(SOURCE_DATE_EPOCH))" \
		| gzip -9n > dist/pkg/changelog.gz
	for p in deb rpm; do \
		PKG_VERSION='$(PKG_VERSION)' PKG_ARCH='$(PKG_ARCH)' PKG_MAINTAINER='$(PKG_MAINTAINER)' \
			$(GO) run $(NFPM) package --config nfpm.yaml --packager $$p --target dist/ || exit 1; \
	done

# The Windows binary, stripped as dist-binary's.
dist-windows-binary:
	mkdir -p dist
	GOOS=windows GOARCH=amd64 CGO_ENABLED=0 $(GO) build -trimpath -ldflags '-s -w $(LDFLAGS)' -o dist/cro-exporter.exe ./cmd/cro-exporter

# The MSI (examples/windows/cro-exporter.wxs, built with wixl) and a zip of
# the binary with README.md and LICENSE, into dist/, of dist-windows-binary's
# binary, or of WINDOWS_EXE's when given (a binary built elsewhere).
# wixl takes the binary by a relative path (an absolute Source fails), so
# it is staged in dist/win/ first, with the zip's files and times.
WINDOWS_EXE ?=
package-windows: msi-tools $(if $(WINDOWS_EXE),,dist-windows-binary)
	rm -rf dist/win $(WINDOWS_DIST).msi $(WINDOWS_DIST).zip
	mkdir -p dist/win
	cp $(or $(WINDOWS_EXE),dist/cro-exporter.exe) dist/win/cro-exporter.exe
	cp README.md LICENSE dist/win/
	touch -d @$(SOURCE_DATE_EPOCH) dist/win/*
	wixl -a x64 -D Version=$(MSI_VERSION) -D Exe=dist/win/cro-exporter.exe -o $(WINDOWS_DIST).msi examples/windows/cro-exporter.wxs
	cd dist/win && TZ=UTC zip -q -X ../$(notdir $(WINDOWS_DIST)).zip cro-exporter.exe README.md LICENSE

# The packages checked as their users' tools check them, and the image:
# examples/package/test.sh says what it checks. It changes nothing outside
# temporary directories and dist/: the image is built in a podman store of
# its own, removed after.
package-test: package package-tools image-tools
	t=$$(mktemp -d) && trap 'rm -rf "$$t"' EXIT && \
	$(MAKE) --no-print-directory image PODMAN="podman --root $$t/storage --runroot $$t/run" && \
	sh examples/package/test.sh dist/*.deb dist/*.rpm dist/cro-exporter-image.tar '$(VERSION)'

# The container image (Containerfile: the static binary alone), built with
# podman into its local store as $(IMAGE), and saved as an OCI archive for
# the test and for loading elsewhere (podman load -i dist/cro-exporter-image.tar).
PODMAN ?= podman
image: dist-binary image-tools
	$(PODMAN) build --quiet --file Containerfile --tag $(IMAGE) .
	rm -f dist/cro-exporter-image.tar
	$(PODMAN) save --quiet --format oci-archive --output dist/cro-exporter-image.tar $(IMAGE)

# ensure installs Debian package $(1) when command $(2) is missing: the
# tests need promtool, a real Prometheus and node_exporter, mkfs.ext4 for
# a filesystem with reserved blocks, wixl, msiinfo (msitools) and zip for
# the MSI and its test, the package test lintian, rpm and podman, the
# bench wrk and stress-ng.
define ensure
	@command -v $(2) >/dev/null || { \
		if [ "$$(id -u)" = 0 ]; then \
			echo "installing Debian package $(1)"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(1) >/dev/null; \
		else \
			echo "$(2) is missing: run sudo apt-get install $(1)"; exit 1; \
		fi; }
endef

tools: msi-tools wine-tools
	$(call ensure,prometheus,promtool)
	$(call ensure,prometheus-node-exporter,prometheus-node-exporter)
	$(call ensure,e2fsprogs,mkfs.ext4)

msi-tools:
	$(call ensure,wixl,wixl)
	$(call ensure,msitools,msiinfo)
	$(call ensure,zip,zip)

package-tools:
	$(call ensure,lintian,lintian)
	$(call ensure,rpm,rpm)

image-tools:
	$(call ensure,podman,podman)

# The Windows build's tests run under Wine (tools/wine, WINDOWS.md): wine64
# and the mingw-w64 gcc that builds the DLL Debian 12's Wine lacks for Go.
wine-tools:
	$(call ensure,wine64,/usr/lib/wine/wine64)
	$(call ensure,gcc-mingw-w64-x86-64-win32,x86_64-w64-mingw32-gcc)
	$(call ensure,util-linux,flock)

# The Windows build's tests of its packages with Windows code, under Wine;
# internal/host's compare with this host's /proc and df (WINDOWS.md).
# holder's fill tests fill a 64 MiB tmpfs mounted for them (as root, and
# skipped otherwise), never the real disk; it is unmounted however the
# tests end.
WINDOWS_PKGS := ./internal/host ./internal/regfile ./internal/statefile ./internal/winholder ./internal/winservice ./internal/wintest ./holder
test-windows: wine-tools
	fill=; if [ "$$(id -u)" = 0 ]; then \
		fill="$$(mktemp -d)" && mount -t tmpfs -o size=64m tmpfs "$$fill" && \
		trap 'umount "$$fill" && rmdir "$$fill"' EXIT || exit 1; \
	fi; \
	CRO_FILL_TMPFS="$$fill" CRO_HOST_DF_TMP="$$(df -B1 --output=size,used,avail /tmp | tail -n1)" GOOS=windows CGO_ENABLED=0 \
		$(GO) test -count=1 -exec '$(CURDIR)/tools/wine/exec.sh' $(WINDOWS_PKGS)

bench-tools: tools wine-tools
	$(call ensure,wrk,wrk)
	$(call ensure,stress-ng,stress-ng)

clean:
	rm -rf bin .state dist
