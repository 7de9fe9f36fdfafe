# The two commands a fresh machine needs: `make demo` and `make test`. Each creates or refreshes .venv.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: demo test bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --quiet --upgrade pip
	$(PY) -m pip install --quiet --quiet -e '.[dev,data]'
	rm -f $(VENV)/.installed-*
	touch $@

demo: $(STAMP)
	$(VENV)/bin/emberflow demo --out out/demo

test: $(STAMP)
	EMBERFLOW_OFFLINE=1 $(PY) -m pytest -q -p no:cacheprovider

# The peers (TensorFlow, PyTorch, LiteRT, onnxruntime) are large: they live in their own environment.
bench: $(STAMP)
	$(PY) -m pip install --quiet -e '.[bench]'
	npm install --no-audit --no-fund --silent  # onnxruntime-web, the web suite's peer
	$(PY) -m benchmarks.run

clean:
	rm -rf $(VENV) out .pytest_cache
