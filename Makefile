# Two entry points: `make demo` and `make test`. Both build .venv themselves.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.sephw-installed
FMNIST := /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz
# The CPU wheel of torch is pinned here (CI); pyproject keeps a permissive range for users.
TORCH_PIN := torch==2.13.0

.PHONY: demo test venv debdeps clean model

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
	$(PY) -m pytest -q -n 2 --dist worksteal

demo: venv debdeps
	$(VENV)/bin/sephw demo

# Rebuild the shipped default model from scratch (about 50 minutes on 2 cores); the exact
# commands also live in each checkpoint's metadata (`sephw info models/sepnet_fmnist.pt`).
SEPHW := $(VENV)/bin/sephw
model: venv debdeps
	$(SEPHW) train --arch sepnet-small --width 0.25 --stem small --dataset fashion-mnist --epochs 12 --lr 0.1 --seed 0 --threads 1 -o models/sepnet_fmnist_full.pt
	$(SEPHW) binarize models/sepnet_fmnist_full.pt -o models/sepnet_fmnist_bin.pt
	$(SEPHW) refine models/sepnet_fmnist_bin.pt --epochs 16 --lr 0.05 --weight-decay 1e-4 --no-augment --seed 0 --threads 1 -o models/sepnet_fmnist.pt
	rm -f models/sepnet_fmnist_bin.pt
	$(SEPHW) quantize models/sepnet_fmnist.pt --calib 2000 -o models/sepnet_fmnist_q.pt

clean:
	rm -rf $(VENV) build .pytest_cache
