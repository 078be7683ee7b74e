# dbscrub — one command runs everything: `make test`.
#
# It installs what is missing (PostgreSQL server binaries with apt-get, Go
# modules through the module proxy), checks formatting, vets, runs
# staticcheck, and runs every test, including the ones against a real,
# throwaway PostgreSQL cluster. With CI=true a missing database server is a
# failure, never a silent skip.

GO          ?= go
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2
PKGS        ?= ./...

.PHONY: test deps lint vet fmt staticcheck unit bench gobench quickstart

test: deps lint unit

deps:
	@scripts/ensure-deps
	$(GO) mod download

lint: fmt vet staticcheck

fmt:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet $(PKGS)

staticcheck:
	$(GO) run $(STATICCHECK) $(PKGS)

unit:
	$(GO) test -count=1 -timeout 30m $(PKGS)
	@if [ -z "$$DBSCRUB_SQLSERVER_DSN" ]; then \
	  echo "!!! DBSCRUB_SQLSERVER_DSN not set: SQL Server integration and conformance tests were SKIPPED (no SQL Server here; see README)"; fi

# Benchmarks are run by hand; see BENCHMARKS.md. bench: dbscrub vs pg_amcheck
# (builds ~3 GB in a throwaway cluster); gobench: the Go benchmarks
# (scheduler, fingerprint vs COPY, per-check costs).
bench:
	$(GO) run ./internal/bench -dir /work/bench-cluster -reps 11 -cache warm,cold -max-rate-reps 5

gobench:
	DBSCRUB_BENCH=1 $(GO) test -run '^$$' -bench . -benchtime 1x -timeout 2h $(PKGS)

quickstart:
	$(GO) run ./examples/quickstart
