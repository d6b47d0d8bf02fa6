# seedtok: two commands do everything on a fresh machine.
#   make test   create .venv, install, run the test suite
#   make demo   create .venv, install, run the main job and write its report
#   make test-web  browser test of `seedtok serve` (installs chromium, playwright-core, the web extra)
PY      ?= python3
VENV    := .venv
VPY     := $(VENV)/bin/python
STAMP   := $(VENV)/.installed
TORCH   := torch==2.13.0

.PHONY: test test-slow test-web demo install clean fuzz fuzz-atheris ablate

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

# Browser test of the web demo (issue 10): Debian's chromium (apt, when missing), playwright-core
# from npm (no browser download), the `web` extra in .venv (Gradio; it pins Pillow < 13). Starts
# `seedtok serve` on 127.0.0.1, drives it headless, stops it; screenshots in tests/web/artifacts/.
WEB_TEST   := tests/web
WEB_STAMP  := $(VENV)/.installed-web
NODE_STAMP := $(WEB_TEST)/node_modules/.package-lock.json
SUDO       := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

$(WEB_STAMP): $(STAMP) pyproject.toml
	$(VPY) -m pip install -q -e '.[dev,web]'
	touch $(WEB_STAMP)

$(NODE_STAMP): $(WEB_TEST)/package.json $(WEB_TEST)/package-lock.json
	cd $(WEB_TEST) && npm ci --no-audit --no-fund

test-web: $(WEB_STAMP) $(NODE_STAMP)
	@command -v chromium >/dev/null 2>&1 || { $(SUDO) apt-get update -q && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium fonts-dejavu-core; }
	PYTHON="$(abspath $(VPY))" CHROMIUM="$$(command -v chromium)" node $(WEB_TEST)/e2e.mjs

demo: $(STAMP)
	$(VENV)/bin/seedtok demo --out demo

# The ablation of issue 11 (docs/ablation.md): 5 tokenizer variants x 3 seeds on the 16k shapes
# world, one table (ablation/ablation.md) + loss curves. About 75 min on 2 cores; re-running resumes.
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
	rm -rf $(VENV) demo ablation build src/*.egg-info
