# lumen's build and test entry points. `make test` is what CI runs (.ci/run).

GO ?= go
# The real-server suite runs the end-to-end tests against Cassandra, Kafka,
# S3 (moto) and, where it can be had, the Flink job server.
TEST_TIMEOUT ?= 45m
# The servers this machine cannot have. Under make test every other
# real-server test fails when its server is missing; these skip, and the
# summary names them. Flink: Beam's Flink job server is not served here
# (DESIGN §7).
UNAVAILABLE_SERVERS ?= flink

SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c

.PHONY: test test-unit test-go fuzz vet fmt-check services-up services-down bench

## test: start the real servers, vet, run every test with the integration
## tests enabled, and stop the servers (also when a step fails).
test:
	testing/services/run $(MAKE) --no-print-directory vet fmt-check fuzz test-go

## test-unit: the tests that need nothing but Go (real-server tests skip).
test-unit:
	$(GO) test ./...

## test-go: every test, requiring the real servers (run by test, which
## starts them), then the summary line and every skip by name.
test-go:
	@echo "make test: servers allowed to be missing: $(UNAVAILABLE_SERVERS)"
	LUMEN_TEST_REQUIRE_SERVERS=1 LUMEN_TEST_UNAVAILABLE="$(UNAVAILABLE_SERVERS)" \
	  $(GO) test -json -count=1 -timeout $(TEST_TIMEOUT) ./... | $(GO) run ./testing/testsummary

## fuzz: the parsers of untrusted bytes, each fuzzed for FUZZTIME: Avro
## container files (the batch's input), single-object messages (Kafka),
## the query server's keys file and Authorization header.
# A count, not a duration: Go 1.26's fuzz coordinator can fail a target
# with a bare "context deadline exceeded" when a -fuzztime duration ends
# while a starved worker is mid-call (golang/go#75804, fixed in Go 1.27);
# make test on a loaded machine hit it (FuzzAuthorization). A count has no
# deadline to race: a slow machine takes longer, and fails only on a
# crasher. 60,000 is what the slowest target ran in the 20 s it had.
FUZZTIME ?= 60000x
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzRead$$' -fuzztime $(FUZZTIME) ./io/avroio
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeSingle$$' -fuzztime $(FUZZTIME) ./event
	$(GO) test -run '^$$' -fuzz '^FuzzParseKeys$$' -fuzztime $(FUZZTIME) ./serving/api
	$(GO) test -run '^$$' -fuzz '^FuzzAuthorization$$' -fuzztime $(FUZZTIME) ./serving/api

vet:
	$(GO) vet ./...

fmt-check:
	@out="$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))"; \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

services-up:
	@testing/services/up

services-down:
	@testing/services/down

## bench: the batch benchmark table (10M events; see cmd/bench).
bench:
	$(GO) run ./cmd/bench batch
