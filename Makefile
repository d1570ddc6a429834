# Set-up and the two user-facing jobs. Every install step the project needs is here, so a
# fresh Debian machine needs nothing but `make demo` or `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
EDGE_VENV ?= .venv-edge
TFLM_VENV ?= .venv-tflm
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip

# Debian packages: offline TTS engines for kws-synth, PortAudio/ALSA for the microphone path,
# libsndfile for audio files where soundfile has no wheel bundling it (32-bit Raspberry Pi OS),
# gcc for the reference C frontend, g++ for the tests that build kws-convert's C++ model arrays,
# chromium for the web page's browser test.
DEB_PACKAGES := espeak-ng flite festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts \
	libportaudio2 libsndfile1 alsa-utils sox gcc g++ make chromium

# TensorFlow with CUDA where an NVIDIA driver is present, the smaller CPU build elsewhere.
TRAIN_EXTRA := $(shell command -v nvidia-smi >/dev/null 2>&1 && echo train || echo train-cpu)

DEMO_WORDS := yes,no,up,down,left,right,on,off,stop,go
OPENWAKEWORD_VERSION := 0.4.0
DEMO_DATA := data/demo
DEMO_MODEL := models/demo

.PHONY: demo test setup deb venv edge-venv tflm-venv clean bench help

help:
	@echo "make demo   set up, synthesize the default data, train, evaluate, convert"
	@echo "make test   set up, then run the whole test suite"
	@echo "make bench  run the benchmarks in bench/"

demo: setup
	$(VENV)/bin/kws-synth --words $(DEMO_WORDS) --out $(DEMO_DATA) --seed 7 --per-word 150 --negatives 600
	@if [ -e $(DEMO_MODEL)/state.json ]; then mv $(DEMO_MODEL) $(DEMO_MODEL).previous-$$(date +%s); \
		echo "kept the previous demo model as $(DEMO_MODEL).previous-*"; fi
	$(VENV)/bin/kws-train --data $(DEMO_DATA) --out $(DEMO_MODEL) --set train.epochs=32 --set train.batch_size=32
	@# exit 3: the int8 guard rejected the int8 model (kept as model_int8.rejected.tflite); the manifest
	@# then serves the float model, which is still a working demo, so say so instead of failing
	@set +e; $(VENV)/bin/kws-convert -m $(DEMO_MODEL); rc=$$?; \
	if [ $$rc -eq 3 ]; then echo "note: the int8 guard rejected model_int8.tflite on this run (see above);" \
		"$(DEMO_MODEL)/dist/manifest.json serves the float model"; elif [ $$rc -ne 0 ]; then exit $$rc; fi
	@echo "demo model: $(DEMO_MODEL), converted to $(DEMO_MODEL)/dist/"
	@echo "  try: $(VENV)/bin/kws-predict -m $(DEMO_MODEL)/dist/ $(DEMO_DATA)/yes/ --top-k 3"
	@echo "       $(VENV)/bin/kws-listen -m $(DEMO_MODEL)/dist/      # your microphone"

# KWS_TFLM_PYTHON: the microcontroller checks run the int8 models in TFLite Micro's own interpreter
test: setup edge-venv tflm-venv
	@set +e; KWS_TFLM_PYTHON="$${KWS_TFLM_PYTHON:-$(abspath $(TFLM_VENV))/bin/python}" $(PY) -m pytest tests; rc=$$?; if [ $$rc -eq 5 ]; then echo "no tests collected"; exit 1; fi; exit $$rc

bench: setup edge-venv
	$(PY) -m bench.run_all

setup: deb venv

deb:
	@missing=""; for p in $(DEB_PACKAGES); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = "0" ]; then \
		echo "installing Debian packages:$$missing"; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get update -qq && apt-get install -y -qq --no-install-recommends $$missing; \
	else \
		echo "Debian packages missing; run as root:"; \
		echo "  sudo apt-get update && sudo apt-get install -y --no-install-recommends$$missing"; \
	fi

# The main environment: the package in editable mode with TensorFlow and the test tools.
# The stamp carries setup.py's checksum so a change of dependencies reinstalls.
VENV_STAMP := $(VENV)/.kws-$(shell cat setup.py Makefile | md5sum | cut -c1-12)
venv: $(VENV_STAMP)
$(VENV_STAMP):
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e ".[$(TRAIN_EXTRA),dev,api,embedding]"
	@# the embedding family's frozen weights (Google's speech_embedding as ONNX) come inside the
	@# openwakeword wheel; only its files are used, so none of its dependencies are installed
	$(PIP) install -q --no-deps "openwakeword==$(OPENWAKEWORD_VERSION)"
	rm -f $(VENV)/.kws-*; touch $@

# A second environment shaped like 32-bit Raspberry Pi OS: the edge package alone, no
# TensorFlow, tflite-runtime 2.14 with numpy<2. Tests run kws-listen and the int8 model in it.
# The package itself is reinstalled every time (a normal, non-editable install, as on a Pi), so the
# edge tests always run the current code.
EDGE_STAMP := $(EDGE_VENV)/.kws-$(shell cat setup.py Makefile | md5sum | cut -c1-12)
edge-venv: $(EDGE_STAMP)
	rm -rf build  # setuptools would reuse build/lib, keeping modules that were deleted from the tree
	$(EDGE_VENV)/bin/pip install -q --no-deps --force-reinstall .
$(EDGE_STAMP):
	test -x $(EDGE_VENV)/bin/python || $(PYTHON) -m venv $(EDGE_VENV)
	$(EDGE_VENV)/bin/pip install -q --upgrade pip
	$(EDGE_VENV)/bin/pip install -q "numpy<2" scipy click pyyaml sounddevice soundfile "tflite-runtime==2.14.0"
	rm -f $(EDGE_VENV)/.kws-*; touch $@

# A third environment with the tflite-micro package (TFLite Micro's interpreter with its reference
# kernels, as on a microcontroller): tests run the int8 window and step models in it and check the
# arena size the C headers state.
TFLM_STAMP := $(TFLM_VENV)/.kws-$(shell cat setup.py Makefile | md5sum | cut -c1-12)
tflm-venv: $(TFLM_STAMP)
$(TFLM_STAMP):
	test -x $(TFLM_VENV)/bin/python || $(PYTHON) -m venv $(TFLM_VENV)
	$(TFLM_VENV)/bin/pip install -q --upgrade pip
	$(TFLM_VENV)/bin/pip install -q tflite-micro numpy
	rm -f $(TFLM_VENV)/.kws-*; touch $@

clean:
	rm -rf $(VENV) $(EDGE_VENV) $(TFLM_VENV) build *.egg-info
