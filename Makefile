# MESP: the user's vocabulary. `make run` and `make test` install what they
# need on a fresh machine (Go modules, the ONNX Runtime library, the Python
# environment) and cache it under ~/.cache/mesp, keyed by pinned versions.
SHELL := /bin/bash
.DEFAULT_GOAL := build

GO        ?= go
COMMIT    ?= $(shell git describe --always --dirty --exclude '*' 2>/dev/null)
# the real data: ../shared/data beside the clone when it is there, else data/
DATA_DIR  ?= $(if $(wildcard ../shared/data/azure2019-invitro-dev.csv.gz),../shared/data,data)
DATA      ?= $(DATA_DIR)/azure2019-invitro-dev.csv.gz
FIXTURE   ?= $(DATA_DIR)/azure2019-invitro-dev-sample100.csv.gz
MODELS    ?= models
CLUSTERS  ?=
K         ?= 8
VENV       = $(shell scripts/setup-venv.sh)
PY         = env PYTHONPATH=$(CURDIR)/training $(VENV)/bin/python
export CGO_ENABLED := 1

.PHONY: image work build run test test-go test-py lint ort venv cluster train-experts train-stop eval bench bench-kshape bench-kshape-scale bench-serve bench-serve-cuda bench-train bench-fleet soak clean

ort:
	@scripts/setup-ort.sh >/dev/null

venv:
	@scripts/setup-venv.sh >/dev/null

build: ort
	$(GO) build -ldflags "-X main.commit=$(COMMIT)" -o bin/mesp ./cmd/mesp
	@bin/mesp version

## run: the main job: the forecast server on the shipped experts at 127.0.0.1:8080
run: build
	bin/mesp serve --models $(MODELS)

## test: every Go and Python test, plus gofmt, vet, staticcheck, ruff and
##   a strict mypy of training/
test: build venv lint test-go test-py

STATICCHECK = honnef.co/go/tools/cmd/staticcheck@v0.8.2
lint: venv
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt: files above need formatting"; exit 1; }
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...
	$(VENV)/bin/ruff check training scripts research
	cd training && $(VENV)/bin/mypy mesp_training

test-go: build venv
	@scripts/ensure-chromium.sh
	@scripts/ensure-prometheus.sh
	MESP_PYTHON=$(VENV)/bin/python $(GO) test -count=1 -timeout 30m ./...
	# a count, not a duration: Go 1.26's fuzz coordinator can fail a
	# -fuzztime duration at its deadline with no crasher (golang/go#75804)
	$(GO) test -run '^$$' -fuzz FuzzDecodeForecastRequest -fuzztime 20000x ./server

test-py: build venv
	cd training && MESP_BIN=$(CURDIR)/bin/mesp \
		../scripts/with-postgres.sh $(PY) -m pytest -q tests

## cluster: K-Shape on the training part of the dev set, published (one
##   atomic switch) into the work folder WORK; the served MODELS stay as they
##   are until train-experts publishes a complete set
WORK      ?= out/work
cluster: build
	bin/mesp cluster --data $(DATA) --part train --k $(K) --out $(WORK)

## work: start the work folder from the served set (before cluster add)
work:
	mkdir -p $(WORK) && cp $(MODELS)/* $(WORK)/

## train-experts: the full Optuna search per cluster and the dense model.
##   CLUSTERS=1,2 trains only those clusters; WORKERS=n runs n processes that
##   share each study through STORAGE (a PostgreSQL URL; SQLite otherwise).
WORKERS  ?= 1
STORAGE  ?=
train-experts: venv build
	@test -f $(WORK)/clusters.json || { echo "train-experts: $(WORK) has no clustering: starting from $(MODELS)'s"; \
	  mkdir -p $(WORK) && cp $(MODELS)/* $(WORK)/; }
	@set -e; pids=; for w in $$(seq $(WORKERS)); do \
	  $(PY) -m mesp_training train --models $(WORK) --config training/search.yaml \
	    $(if $(CLUSTERS),--clusters $(CLUSTERS),) $(if $(STORAGE),--storage $(STORAGE),) & pids="$$pids $$!"; \
	done; for p in $$pids; do wait $$p; done
	$(PY) -m mesp_training train-invoke --models $(WORK) --config training/search.yaml \
	  $(if $(CLUSTERS),--clusters $(CLUSTERS),)
	$(PY) -m mesp_training soft-routing --models $(WORK) --config training/search.yaml
	$(PY) -m mesp_training train-trees --models $(WORK) --config training/search.yaml
	$(PY) -m mesp_training train-trees --quantiles --models $(WORK) --config training/search.yaml
	bin/mesp fit-silence --data $(DATA) --models $(WORK)
	bin/mesp stop-decisions --data $(DATA) --models $(WORK) --functions validation --out out/stop-decisions.parquet
	$(PY) -m mesp_training train-stop --models $(WORK) --decisions out/stop-decisions.parquet
	bin/mesp choose-threshold --data $(DATA) --models $(WORK)
	bin/mesp choose-quantiles --data $(DATA) --models $(WORK)
	bin/mesp choose-volume --data $(DATA) --models $(WORK)
	bin/mesp publish --from $(WORK) --models $(MODELS)

## train-stop: the stop model alone (p_invoke on a platform where functions
##   also stop), fitted on the work folder's served p_invoke, then the
##   default threshold chosen again; publish as train-experts does
train-stop: venv build
	bin/mesp stop-decisions --data $(DATA) --models $(WORK) --functions validation --out out/stop-decisions.parquet
	$(PY) -m mesp_training train-stop --models $(WORK) --decisions out/stop-decisions.parquet
	bin/mesp choose-threshold --data $(DATA) --models $(WORK)

## image: the CPU Dockerfile built with buildah (local stand-ins for its base
##   images from Debian packages where no registry answers), then run and
##   asked for a forecast (scripts/build-image.sh, scripts/test-image.sh)
image:
	scripts/build-image.sh

## eval: backtest and provisioning simulation on the dev set's test part,
##   with the LightGBM peers of the minutely loop and of the counts (fitted
##   on the training part; cached in out/ by the hash of their inputs)
eval: build venv
	bin/mesp export --data $(DATA) --part test --out out/eval-test.parquet
	$(PY) scripts/peer_lightgbm_minutely.py --models $(MODELS) --eval out/eval-test.parquet --out out/peer-lightgbm-minutely.csv
	$(PY) scripts/peer_lightgbm_counts.py --models $(MODELS) --eval out/eval-test.parquet --out out/peer-lightgbm-counts.csv
	$(PY) scripts/peer_lightgbm_counts.py --mean --models $(MODELS) --eval out/eval-test.parquet --out out/peer-lightgbm-mean.csv
	$(PY) scripts/peer_lightgbm_quantile.py --models $(MODELS) --eval out/eval-test.parquet --out out/peer-lightgbm-quantile.csv
	bin/mesp eval --data $(DATA) --part test --models $(MODELS) --peer-lightgbm out/peer-lightgbm-minutely.csv \
	  --peer-counts out/peer-lightgbm-counts.csv --peer-mean out/peer-lightgbm-mean.csv \
	  --peer-quantiles out/peer-lightgbm-quantile.csv \
	  --out docs/eval/eval.json --plots docs/eval
	$(PY) scripts/results_tables.py --write

bench: bench-kshape bench-serve

bench-kshape: build venv
	MESP_PYTHON=$(VENV)/bin/python scripts/bench-kshape.sh $(DATA)

bench-kshape-scale: build
	scripts/bench-kshape-scale.sh $(DATA)

bench-serve: build venv
	MESP_PYTHON=$(VENV)/bin/python scripts/bench-serve.sh

## bench-fleet: 100,000 functions built from the dev set's days, three
##   whole minutes decided by the decision loop while KEDA asks over gRPC,
##   against one request per function, under deploy/mesp.yaml's Go memory
##   limit (server.go_memory_limit_bytes; docs/bench/fleet.json)
FLEET ?= 100000
FLEET_GO_MEMORY_LIMIT ?= 786432000
bench-fleet: build
	MESP_SERVER__GO_MEMORY_LIMIT_BYTES=$(FLEET_GO_MEMORY_LIMIT) bin/mesp bench-fleet --data $(DATA) --functions $(FLEET) --minutes 3 --out docs/bench/fleet.json

## soak: four minutes of mixed hostile load (oversized, slow and empty-object
##   bodies, megabyte ids, tokenless pushes, a StreamIsActive flood, a hung,
##   dripping and lying Prometheus) with 50 hot reloads; prints requests,
##   failures, peak RSS and goroutines (docs/bench/soak.json)
soak: build
	bin/mesp soak --data $(FIXTURE) --models $(MODELS) --duration 4m --reloads 50 --out docs/bench/soak.json

## bench-serve-cuda: mesp serve on ONNX Runtime's CUDA provider against the
##   CPU provider of the same GPU build (needs a GPU and MESP_ORT__LIBRARY)
bench-serve-cuda: build
	scripts/bench-serve-cuda.sh

## bench-train: seconds per epoch of each model family on torch's device
##   (CUDA_VISIBLE_DEVICES= for the CPU)
bench-train: venv
	$(PY) scripts/bench_train.py

clean:
	rm -rf bin
