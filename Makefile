# seedtok: two commands do everything on a fresh machine.
#   make test   create .venv, install, run the test suite
#   make demo   create .venv, install, run the main job and write its report (demo/report.html)
#   make test-web  browser tests of `seedtok serve` and demo/report.html (installs chromium, playwright-core, the web extra)
#   make tiny-model  rebuild the shipped tiny model from the stand-ins (`seedtok demo --train`)
PY      ?= python3
VENV    := .venv
VPY     := $(VENV)/bin/python
STAMP   := $(VENV)/.installed
TORCH   := torch==2.13.0

.PHONY: test test-slow test-web demo tiny-model ship-model install clean fuzz fuzz-atheris ablate

$(VPY):
	$(PY) -m venv $(VENV)

$(STAMP): $(VPY) pyproject.toml
	$(VPY) -m pip install -q --upgrade pip
	$(VPY) -m pip install -q $(TORCH)
	$(VPY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(VPY) -m pytest -q

# Heavier tests (marked `slow`): SIGKILL crash-safety of training, ... CI runs them too.
test-slow: $(STAMP)
	$(VPY) -m pytest -q -m slow

# Browser tests (issues 10, 17): Debian's chromium (apt, when missing), playwright-core from npm
# (no browser download), the `web` extra in .venv (Gradio; it pins Pillow < 13). e2e.mjs starts
# `seedtok serve` (the shipped model) on 127.0.0.1, drives it headless, stops it; report.mjs opens
# demo/report.html (made by `make demo` when missing) and checks every image loaded. Screenshots
# in tests/web/artifacts/.
WEB_TEST   := tests/web
WEB_STAMP  := $(VENV)/.installed-web
NODE_STAMP := $(WEB_TEST)/node_modules/.package-lock.json
SUDO       := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

$(WEB_STAMP): $(STAMP) pyproject.toml
	$(VPY) -m pip install -q -e '.[dev,web]'
	touch $(WEB_STAMP)

$(NODE_STAMP): $(WEB_TEST)/package.json $(WEB_TEST)/package-lock.json
	cd $(WEB_TEST) && npm ci --no-audit --no-fund

test-web: $(WEB_STAMP) $(NODE_STAMP) demo/report.html
	@command -v chromium >/dev/null 2>&1 || { $(SUDO) apt-get update -q && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium fonts-dejavu-core; }
	PYTHON="$(abspath $(VPY))" CHROMIUM="$$(command -v chromium)" node $(WEB_TEST)/e2e.mjs
	REPORT="$(abspath demo/report.html)" CHROMIUM="$$(command -v chromium)" node $(WEB_TEST)/report.mjs

# The main job (issue 17): the shipped trained tiny model on a fresh evaluation set; metrics table
# with floors, demo/report.json (docs/demo.md lists its keys) and demo/report.html.
demo: $(STAMP)
	$(VENV)/bin/seedtok demo --out demo

demo/report.html: $(STAMP)
	$(VENV)/bin/seedtok demo --out demo

# Rebuild the model from the shipped stand-ins (data seed 0; stages 1, 2, 3), then the same report
# for it in demo-train/ (the rebuilt model is demo-train/train/model). Tens of CPU-minutes.
tiny-model: $(STAMP)
	$(VENV)/bin/seedtok demo --train --out demo-train

# Re-ship: package a stage-2 run and a stage-3 run into src/seedtok/assets/models/seed-tiny
# (sha256s and provenance rewritten), e.g. make ship-model TOKENIZER=demo-train/train/stage2 LLM=demo-train/train/llm
ship-model: $(STAMP)
	$(VENV)/bin/seedtok model package --tokenizer $(TOKENIZER) --llm $(LLM) $(if $(DATA),--data $(DATA)) $(if $(REPORT),--report $(REPORT))

# The ablation (docs/ablation.md): 5 tokenizer variants + the oracle row x 3 seeds on the 16k shapes
# world, the shipped recipe for each, one table (ablation/ablation.md) + loss curves. About 2 h 40 min
# on 2 free cores; re-running resumes (on finished runs it only summarises, byte-identically).
ABLATION_DATA ?= shapes16k
ablate: $(STAMP)
	[ -f $(ABLATION_DATA)/index.json ] || $(VENV)/bin/seedtok data shapes --out $(ABLATION_DATA) --num 16000 --seed 0
	$(VENV)/bin/seedtok ablate --data $(ABLATION_DATA) --out ablation

# Long fuzz run: 2,500 inputs per target x 4 targets, report in fuzz/report.json.
fuzz: $(STAMP)
	$(VPY) -m seedtok.fuzzing --runs 2500 --out fuzz/report.json

# Coverage-guided fuzzing of the same targets with atheris (installed on demand).
FUZZ_RUNS ?= 2500
fuzz-atheris: $(STAMP)
	$(VPY) -m pip install -q 'atheris>=2.3'
	for t in image_bytes caption_text token_ids config_dict; do \
		$(VPY) -m seedtok.fuzzing --engine atheris --target $$t --runs $(FUZZ_RUNS) || exit 1; done

clean:
	rm -rf $(VENV) demo demo-train ablation build src/*.egg-info
