# The two commands a fresh machine needs: `make demo` and `make test`. Each creates or refreshes .venv.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
# The JS tooling (esbuild to measure the runtime's minified size; onnxruntime-web for the web benchmark).
NODE_STAMP := node_modules/.installed-$(shell cat package-lock.json | cksum | cut -d' ' -f1)

.PHONY: demo test bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --quiet --upgrade pip
	$(PY) -m pip install --quiet --quiet -e '.[dev,data]'
	rm -f $(VENV)/.installed-*
	touch $@

$(NODE_STAMP): package-lock.json
	npm ci --no-audit --no-fund --silent
	touch $@

demo: $(STAMP)
	$(VENV)/bin/emberflow demo --out out/demo

test: $(STAMP) $(NODE_STAMP)
	EMBERFLOW_OFFLINE=1 $(PY) -m pytest -q -p no:cacheprovider

# The peers (TensorFlow, PyTorch, LiteRT, onnxruntime) are large: they live in their own environment.
bench: $(STAMP) $(NODE_STAMP)
	$(PY) -m pip install --quiet -e '.[bench]'
	$(PY) -m benchmarks.run

clean:
	rm -rf $(VENV) out .pytest_cache
