# ferrite: the two set-up commands are `make serve` and `make test`.
SHELL := /bin/bash
CARGO_TARGET_DIR ?= $(CURDIR)/target
export CARGO_TARGET_DIR
BIN := $(CARGO_TARGET_DIR)/release/ferrite
MODEL := models/SmolLM2-135M-Instruct.Q4_1.gguf
# A second real model for the multi-model tests, made by `ferrite quantize`.
MODEL_Q8 := models/SmolLM2-135M-Instruct.Q8_0.gguf
# The default model as a safetensors folder, for the ISQ tests.
HF_MODEL := models/smollm2-135m-hf
# The default model relabelled as IBM Granite: an architecture only llama.cpp loads.
GRANITE := models/smollm2-135m-granite.Q4_1.gguf
# The default model without its chat template (templates tests).
NOTEMPLATE := models/SmolLM2-135M-Instruct-notemplate.Q4_1.gguf
# The default model split in three parts, as large models are published (downloads tests).
SPLIT_DIR := models/split
SPLIT := $(SPLIT_DIR)/SmolLM2-135M-Instruct-Q4_1-00001-of-00003.gguf
# The default model with a random-weight vision projector beside it, as a
# vision model sits in LM Studio's folder (images tests).
VLM_DIR := models/vlm
VLM := $(VLM_DIR)/SmolLM2-135M-Instruct.Q4_1.gguf
MMPROJ := $(VLM_DIR)/mmproj-SmolLM2-135M-test-F16.gguf
# The embedding model: all-MiniLM-L6-v2 from PyPI, made a GGUF by `ferrite convert`.
EMBED_HF := models/all-MiniLM-L6-v2
EMBED := models/all-MiniLM-L6-v2.F16.gguf
VENV := .venv
# Claude Code and Codex, real agents for the tests (npm).
CLAUDE := .tools/node_modules/.bin/claude
CODEX := .tools/node_modules/.bin/codex
# LM Studio's JS SDK, for tests/node (versions in tests/node/package.json).
LMS_JS := tests/node/node_modules/.package-lock.json
# The web app's build and test tools (npm).
WEB_JS := web/node_modules/.package-lock.json
# The test binaries whose outcome depends on the runtime (generation, tokens,
# templates, loading). The rest (auth, budgets, stores, routing, the CLI,
# lifecycle, metrics, embeddings, long-context policies and MemAgent, which
# live in the middleware; safetensors, always mistral.rs; images, llama.cpp
# only) test the server around the engine and run once, on llama.cpp.
RUNTIME_TESTS := anthropic cache chat completions concurrency errors hostile lmstudio \
	registry runtimes templates thinking tokens
HOST ?= 127.0.0.1
PORT ?= 1234

.PHONY: serve test build ui model venv bench bench-1.7b bench-embeddings bench-budgets bench-export bench-context-shift bench-adapters bench-long-context bench-swap bench-soak bench-downloads bench-images bench-ollama lint fmt clippy clean

## serve: fetch the default models if missing (chat and embeddings), build,
## serve on $(HOST):$(PORT)
serve: $(MODEL) build $(EMBED)
	$(BIN) serve --model $(MODEL) --embedding-model $(EMBED) --host $(HOST) --port $(PORT)

## test: fetch what tests need, then run every test (Rust and the openai SDK)
## (memory tests also run against PostgreSQL and /docs in headless Chromium:
## scripts/postgres.sh and scripts/chromium.sh provide them)
## (the Rust suite runs on the llama.cpp runtime, then the tests whose
## outcome depends on the runtime run again on mistral.rs)
test: $(MODEL) $(HF_MODEL)/config.json build $(MODEL_Q8) $(GRANITE) $(EMBED) $(SPLIT) $(NOTEMPLATE) $(VLM) $(MMPROJ) venv $(CLAUDE) $(CODEX) $(LMS_JS) $(WEB_JS)
	PG_URL=$$(scripts/postgres.sh) && CHROMIUM=$$(scripts/chromium.sh) && \
	export FERRITE_TEST_POSTGRES_URL=$$PG_URL FERRITE_TEST_CHROMIUM=$$CHROMIUM \
		FERRITE_BIN=$(BIN) FERRITE_TEST_MODEL=$(CURDIR)/$(MODEL) FERRITE_TEST_MODEL_Q8=$(CURDIR)/$(MODEL_Q8) \
		FERRITE_TEST_SAFETENSORS=$(CURDIR)/$(HF_MODEL) FERRITE_TEST_GRANITE=$(CURDIR)/$(GRANITE) \
		FERRITE_TEST_EMBED=$(CURDIR)/$(EMBED) FERRITE_TEST_EMBED_HF=$(CURDIR)/$(EMBED_HF) \
		FERRITE_TEST_SPLIT=$(CURDIR)/$(SPLIT_DIR) FERRITE_TEST_NOTEMPLATE=$(CURDIR)/$(NOTEMPLATE) \
		FERRITE_TEST_VLM=$(CURDIR)/$(VLM) && \
	FERRITE_TEST_RUNTIME=llama.cpp cargo test --release --workspace --locked && \
	FERRITE_TEST_RUNTIME=mistral.rs cargo test --release --workspace --locked \
		$(addprefix --test ,$(RUNTIME_TESTS)) && \
	$(VENV)/bin/python -m pytest -q tests/python

## bench: both runtimes and llama.cpp's llama-server on the default model
## (decode, 8 streams, prompt processing), then ferrite's features
bench: $(MODEL) build
	scripts/bench-runtimes.sh $(BIN) $(MODEL) "$$(scripts/build-llama-server.sh)"
	scripts/bench.sh $(BIN) $(MODEL)

## bench-1.7b: the same comparison at SmolLM2-1.7B's shape (random weights, Q4_K)
SYNTH := models/synth-smollm2-1.7b.Q4_K.gguf
bench-1.7b: $(SYNTH) build
	BENCH_MAX_TOKENS=64 BENCH_REQUESTS_1=2 BENCH_REQUESTS_8=8 \
		scripts/bench-runtimes.sh $(BIN) $(SYNTH) "$$(scripts/build-llama-server.sh)"
$(SYNTH): $(MODEL) venv | build
	$(VENV)/bin/python ../shared/bench/synth_model.py $(MODEL) $(SYNTH).f16 --shape 1.7b
	$(BIN) quantize $(SYNTH).f16 $@ --type q4_k && rm $(SYNTH).f16

## bench-budgets: the budget check's latency, in-process against shared
## through PostgreSQL (budgets.url), p50/p99
bench-budgets: $(MODEL) build venv
	scripts/bench-budgets.sh $(BIN) $(MODEL) "$$(scripts/postgres.sh)"

## bench-export: GET /v1/memory/export of 10K and 1M stored exchanges:
## rows a second and the server's peak memory growth
bench-export: $(MODEL) build venv
	scripts/bench-export.sh $(BIN) $(MODEL)

## bench-context-shift: an answer longer than the window (rolling_window)
## against the same answer in a window it fits
bench-context-shift: $(MODEL) build venv
	scripts/bench-context-shift.sh $(BIN) $(MODEL)

## bench-adapters: 8 streams on the base model, on one LoRA adapter, and on
## mixed adapter sets (sets take turns at the step loop), at both sizes
bench-adapters: $(MODEL) $(SYNTH) build venv
	scripts/bench-adapters.sh $(BIN) $(MODEL) 128
	scripts/bench-adapters.sh $(BIN) $(SYNTH) 32

## bench-long-context: MemAgent's seconds per 100K input tokens (a 25K-token
## conversation on the default model; more sizes: scripts/bench-long-context.sh)
bench-long-context: $(MODEL) build venv
	scripts/bench-long-context.sh $(BIN) $(MODEL)

## bench-embeddings: embeddings/s, 1 and 64 inputs a request and 8 clients,
## against llama-server on the same GGUF
bench-embeddings: $(MODEL) build $(EMBED) venv
	scripts/bench-embeddings.sh $(BIN) $(EMBED) $(MODEL) "$$(scripts/build-llama-server.sh)"

## bench-swap: what a just-in-time model swap costs (max_loaded_models = 1)
bench-swap: $(MODEL) build $(MODEL_Q8)
	scripts/bench-swap.sh $(BIN) $(MODEL) $(MODEL_Q8)

## bench-downloads: ferrite get against curl on the same body from a local
## server that speaks the Hugging Face Hub's API
bench-downloads: $(MODEL) build venv
	scripts/bench-downloads.sh $(BIN)

## bench-images: time to first token with and without an image, ferrite
## and llama-server on the same files (a ViT-B/16-shaped random projector)
bench-images: $(MODEL) build venv
	mkdir -p models/bench && $(VENV)/bin/python scripts/make-mmproj.py $(MODEL) models/bench/mmproj-vit-b.gguf --shape vit-b
	$(VENV)/bin/python scripts/bench-images.py $(BIN) $(MODEL) models/bench/mmproj-vit-b.gguf "$$(scripts/build-llama-server.sh)"

## bench-ollama: Ollama's /api/chat against /v1/chat/completions on cache
## hits (the route's own cost), one server, requests alternating
bench-ollama: $(MODEL) build venv
	$(VENV)/bin/python scripts/bench-ollama.py $(BIN) $(MODEL)

## bench-soak: RSS over 1,000 requests with disconnects, prefix cache on and off
bench-soak: $(MODEL) build
	scripts/bench-soak.sh $(BIN) $(MODEL)

build:
	scripts/build-deps.sh
	cargo build --release --locked -p ferrite-cli

model: $(MODEL)
$(MODEL):
	scripts/fetch-model.sh models

$(EMBED_HF)/model.safetensors:
	scripts/fetch-embedding-model.sh $(EMBED_HF)

$(EMBED): $(EMBED_HF)/model.safetensors | build
	$(BIN) convert $(EMBED_HF) $@

$(MODEL_Q8): $(MODEL) | build
	$(BIN) quantize $(MODEL) $(MODEL_Q8) --type q8_0

$(SPLIT): $(MODEL) venv scripts/gguf-split.py scripts/gguf_copy.py
	rm -rf $(SPLIT_DIR) $(SPLIT_DIR).tmp && mkdir -p $(SPLIT_DIR).tmp
	$(VENV)/bin/python scripts/gguf-split.py $(MODEL) $(SPLIT_DIR).tmp/SmolLM2-135M-Instruct-Q4_1 3
	mv $(SPLIT_DIR).tmp $(SPLIT_DIR)

$(NOTEMPLATE): $(MODEL) venv scripts/gguf-strip-template.py scripts/gguf_copy.py
	$(VENV)/bin/python scripts/gguf-strip-template.py $(MODEL) $@.tmp && mv $@.tmp $@

# A hard link where the file system allows it: the same 100 MB file twice.
$(VLM): $(MODEL)
	mkdir -p $(VLM_DIR) && (ln -f $(MODEL) $@ 2>/dev/null || cp $(MODEL) $@)

$(MMPROJ): $(MODEL) venv scripts/make-mmproj.py
	mkdir -p $(VLM_DIR) && $(VENV)/bin/python scripts/make-mmproj.py $(MODEL) $@.tmp && mv $@.tmp $@

$(GRANITE): $(MODEL) venv scripts/gguf-as-granite.py scripts/gguf_copy.py
	$(VENV)/bin/python scripts/gguf-as-granite.py $(MODEL) $@.tmp && mv $@.tmp $@

$(HF_MODEL)/config.json: $(MODEL) venv scripts/gguf-to-hf.py
	$(VENV)/bin/python scripts/gguf-to-hf.py $(MODEL) $(HF_MODEL).tmp
	rm -rf $(HF_MODEL) && mv $(HF_MODEL).tmp $(HF_MODEL)

$(CLAUDE):
	npm install --silent --no-audit --no-fund --prefix .tools @anthropic-ai/claude-code@2.1.328
$(CODEX):
	npm install --silent --no-audit --no-fund --prefix .tools @openai/codex@0.171.0

# @lmstudio/sdk 2.0.0 asks for @lmstudio/lms-isomorphic ^0.5.0, which the npm
# registry here lacks; package.json pins 0.4.6, which has all the SDK uses.
$(LMS_JS): tests/node/package.json tests/node/package-lock.json
	npm ci --silent --no-audit --no-fund --prefix tests/node

$(WEB_JS): web/package.json web/package-lock.json
	npm ci --silent --no-audit --no-fund --prefix web

## ui: rebuild the web app's bundle (web/dist, committed) from web/src
ui: $(WEB_JS)
	cd web && npx --no-install vite build

venv: $(VENV)/.ready
$(VENV)/.ready: tests/python/requirements.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r tests/python/requirements.txt
	touch $@

lint: fmt clippy
fmt:
	cargo fmt --all -- --check
clippy:
	cargo clippy --release --locked --workspace --all-targets -- -D warnings

clean:
	cargo clean
	rm -rf $(VENV) .tools tests/node/node_modules web/node_modules
