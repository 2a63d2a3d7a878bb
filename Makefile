# Two entry points: `make demo` and `make test`. Both build .venv themselves.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.sephw-installed
FMNIST := /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz
# The CPU wheel of torch is pinned here (CI); pyproject keeps a permissive range for users.
TORCH_PIN := torch==2.13.0

.PHONY: demo test venv debdeps clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH_PIN)
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

# Debian packages: the Fashion-MNIST IDX files and Icarus Verilog.
debdeps:
	@missing=""; \
	test -f $(FMNIST) || missing="$$missing dataset-fashion-mnist"; \
	command -v iverilog >/dev/null 2>&1 || missing="$$missing iverilog"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing Debian packages:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else \
	    echo "missing Debian packages:$$missing"; \
	    echo "run: sudo apt-get install -y$$missing"; exit 1; \
	  fi; \
	fi

test: venv debdeps
	$(PY) -m pytest -q

demo: venv debdeps
	$(VENV)/bin/sephw demo

clean:
	rm -rf $(VENV) build .pytest_cache
