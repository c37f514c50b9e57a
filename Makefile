PY := .venv/bin/python
STAMP := .venv/.installed

.PHONY: setup demo lint test bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml requirements.lock
	test -x $(PY) || python3 -m venv .venv
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.lock
	# the LPW table's classical detector; --no-deps: its wheel asks for opencv-python (pyproject.toml, extra lpw)
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps pupil-detectors==2.0.2 cysignals==1.12.5
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e . 2>/dev/null \
	  || $(PY) -m pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $(STAMP)

# Optional: MediaPipe FaceMesh for face photos (`maskpurify purify --masks auto|faces`). Its wheel declares numpy<2
# and heavy extras it does not need here, hence --no-deps with the four packages it really imports.
.PHONY: setup-faces
setup-faces: setup
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps mediapipe==0.10.21 absl-py attrs flatbuffers "protobuf>=4.25.3,<5"

demo: setup
	.venv/bin/maskpurify demo --out runs/demo

lint: setup  # the import contract in pyproject.toml: every module imports only from the layers below its own
	.venv/bin/lint-imports

test: setup
	$(PY) -m pytest

bench: setup  # speed targets, each writing benchmarks/results/*.json with its command; run on an idle machine
	$(PY) benchmarks/render.py
	$(PY) benchmarks/purify_speed.py
	$(PY) benchmarks/train_speed.py

clean:
	rm -rf runs .pytest_cache
