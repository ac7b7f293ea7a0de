# Two commands do everything: `make demo` and `make test`. Both set up .venv on first use.

PYTHON ?= python3
VENV ?= .venv
# The CPU build of PyTorch. A CUDA user sets this to a CUDA build instead, e.g.
#   make test TORCH_SPEC="torch --index-url https://download.pytorch.org/whl/cu128"
TORCH_SPEC ?= torch==2.13.0
PYTEST_ARGS ?=

STAMP := $(VENV)/.installed

.PHONY: demo test bench venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml Makefile
	@if ! command -v iverilog >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Icarus Verilog (apt-get install iverilog)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iverilog >/dev/null; \
	  else \
	    echo "warning: Icarus Verilog is missing and this is not a root Debian shell;" \
	         "install it (Debian/Ubuntu: sudo apt-get install iverilog) for the cocotb benches"; \
	  fi; \
	fi
	@if ! command -v g++ >/dev/null 2>&1 || ! perl -MPod::Usage -e1 >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing g++ and perl for Verilator's compiled simulation (apt-get install g++ perl)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq g++ perl >/dev/null; \
	  else \
	    echo "warning: g++ or perl is missing and this is not a root Debian shell; device='sim'" \
	         "then runs in the Amaranth simulator (install g++ and perl for the compiled one)"; \
	  fi; \
	fi
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --upgrade pip
	$(VENV)/bin/python -m pip install -q "$(TORCH_SPEC)"
	$(VENV)/bin/python -m pip install -q -e ".[torch,onnx,test]"
	touch $@

demo: $(STAMP)
	$(VENV)/bin/gatework demo

test: $(STAMP)
	$(VENV)/bin/python -m pytest -W error $(PYTEST_ARGS)

# Regenerate every measured number in docs/: about 5 minutes on 2 cores, plus the board
# builds of the performance report (`gatework bench`; cached in build/ once built).
bench: $(STAMP)
	$(VENV)/bin/gatework bench accuracy
	$(VENV)/bin/gatework bench golden
	$(VENV)/bin/gatework bench digits --device sim
	$(VENV)/bin/gatework bench vowels --device sim
	$(VENV)/bin/gatework bench cycles --json docs/cycles.json
	$(VENV)/bin/gatework bench blocks
	$(VENV)/bin/gatework bench sim
	$(VENV)/bin/gatework verify icebreaker
	$(VENV)/bin/gatework verify icebreaker --routed
	$(VENV)/bin/gatework verify ulx3s-85f
	$(VENV)/bin/gatework bench

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
