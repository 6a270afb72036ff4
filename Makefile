# Two commands do everything on a fresh machine: `make report` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
PROFILE ?= default
STAMP := $(VENV)/.installed-stamp

# Optional: a folder of your own sharp photos, trained on next to the bundled ones.
PHOTOS ?=
# `make weights`: the photo folders the pretrained teacher trains on (the shipped weights used
# the wallpaper photos that `make wallpapers` links; see pixel_utils/weights/manifest.json).
WEIGHTS_PHOTOS ?=

# The browser tests run unless this is set to 1 (then they are skipped, and say so).
PIXEL_SKIP_BROWSER ?=

.PHONY: setup report weights student student-speed student-twin sweep kd-scarce kd-variants kd-slice wallpapers browser test unit notebooks lint format clean-reports

setup: $(STAMP)

# Rebuilt only when pyproject.toml changes; torch 2.14.1 / torchvision 0.29.1 come from local disk.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip setuptools wheel
	$(PY) -m pip install --quiet -e '.[dev]'
	$(PY) -m pixel_utils.report.html_export || echo "warning: no npm; executed notebooks will not be exported to offline HTML"
	touch $(STAMP)

report: setup
	$(PY) -m pixel_utils.report --profile $(PROFILE) $(if $(PHOTOS),-p photo_folder $(PHOTOS))
	@if [ "$(PROFILE)" = default ]; then $(PY) -m pixel_utils.report.readme; fi

# Hours on a 2-core CPU (minutes on a GPU); resumable: run it again after an interruption.
weights: setup
	$(PY) -m pixel_utils.training.pretrain --profile $(PROFILE) $(foreach d,$(WEIGHTS_PHOTOS),--photos $(d)) --ship

# The shipped student, in four steps (resumable). First the default student and recipe,
# distilled from the shipped teacher for 24,000 steps on 2,400 teacher-labelled batches, then
# 3,000 quantisation-aware steps through its int8 rounding, written with its own manifest into
# data/student-base (80 min on an idle 2-vCPU AVX2 CPU). Then that student grown by two coarse
# blocks (profiles.py: grown_student_kwargs), fine-tuned for 6,000 steps on the same batches and
# again 3,000 steps through its int8 rounding, written into data/student-grown (about 20 min).
# Then a third level (one block of 128 channels at 1/16 resolution) and a fourth fine block added
# to it (deepened_student_kwargs), fine-tuned for 6,000 steps on its own batches of 192-pixel
# patches and then 24,000 steps through its int8 rounding on the PSNR loss (profiles.py:
# deepen_qat_steps, deepen_qat_loss), and shipped (on a 2-core Xeon: 27 min labelling, 25
# fine-tuning, 43 fine-tuning through the rounding, then a few minutes of scoring and timing).
# Then its int8 fine-tuning continues on 1,600 batches labelled afresh (another patch stream:
# profiles.py refine_seed) for 8,000 steps at a third of the peak lr, and that ships.
STUDENT_BASE ?= data/student-base
STUDENT_GROWN ?= data/student-grown
student: setup
	$(PY) -m pixel_utils.training.pretrain --profile $(PROFILE) --student --ship --out $(STUDENT_BASE)
	$(PY) -m pixel_utils.training.pretrain --profile $(PROFILE) --student --grow-from $(STUDENT_BASE)/student.pt --ship --out $(STUDENT_GROWN)
	$(PY) -m pixel_utils.training.pretrain --profile $(PROFILE) --student --grow-from $(STUDENT_GROWN)/student.pt --deepen --ship
	$(PY) -m pixel_utils.training.pretrain --profile $(PROFILE) --student --refine-from pixel_utils/weights/student.pt --ship

# The shipped student's speed measured again on this machine (a minute; int8 speed depends on
# whether the CPU has VNNI int8 instructions), recorded in the manifest next to earlier figures.
student-speed: setup
	$(PY) -m pixel_utils.training.pretrain --profile $(PROFILE) --student --measure-speed

# Does distillation pay at that scale? The distilled base student's scratch twin, and for
# KD_SEEDS - 1 further seeds a distilled student and its twin (about 30 min per run on an idle
# 2-core CPU: 2.5 hours for 3 seeds; resumable), recorded in $(STUDENT_BASE)/manifest.json; a
# student grown from there afterwards keeps the record in the shipped manifest.
KD_SEEDS ?= 3
student-twin: setup
	$(PY) -m pixel_utils.training.pretrain --profile $(PROFILE) --student --scratch-twin --kd-seeds $(KD_SEEDS) --out $(STUDENT_BASE)

# The student design space (about an hour on a 2-core CPU): figures/student_sweep.json,
# student_pareto.png and kd_pays.png, with the commit they ran on.
SWEEP_ARGS ?= --steps 2000
sweep: setup
	$(PY) -m pixel_utils.training.sweep --profile $(PROFILE) $(SWEEP_ARGS)

# Does distillation pay when the ground truth is scarce? Distilled and scratch students with the
# ground truth kept on all, 24, 6 and 2 of the teacher cache's batches (3,000 steps, 3 seeds;
# about an hour on a 2-core CPU, resumable): figures/kd_scarce_truth.json and its figure.
SCARCE_ARGS ?=
kd-scarce: setup
	$(PY) -m pixel_utils.training.scarce_truth --profile $(PROFILE) $(SCARCE_ARGS)

# Three more distillation recipes against the report's students: the teacher's ×8 self-ensemble as
# the target, teacher-labelled views no sharp image labels (mixed and zoomed-in inputs), and the
# shipped student as a teacher assistant; 3 seeds, about 15 min on a 2-core CPU after
# `make report`: figures/kd_variants.json and its figure.
VARIANTS_ARGS ?=
kd-variants: setup
	$(PY) -m pixel_utils.training.kd_variants --profile $(PROFILE) $(VARIANTS_ARGS)

# A student cut from the teacher (its network with a third of its channels): random or cut first
# weights, from scratch or distilled, and the cut pair again at a fine-tuning learning rate;
# 3 seeds, about 55 min on a 2-core CPU after `make report`: figures/kd_slice.json and its figure.
SLICE_ARGS ?=
kd-slice: setup
	$(PY) -m pixel_utils.training.teacher_slice --profile $(PROFILE) $(SLICE_ARGS)

# Links the real photographs among Debian's wallpaper packages into data/photos/wallpapers
# (apt-get install mate-backgrounds plasma-workspace-wallpapers).
wallpapers: setup
	$(PY) -c "from pixel_utils.data.sources import link_wallpapers; print(link_wallpapers('data/photos/wallpapers'))"

test: lint unit notebooks

browser:
	@if [ "$(PIXEL_SKIP_BROWSER)" != 1 ]; then bash .ci/install-chromium; fi

unit: setup browser
	PIXEL_PROFILE=smoke PIXEL_SKIP_BROWSER=$(PIXEL_SKIP_BROWSER) $(PY) -m pytest --durations=10 tests

notebooks: setup
	PIXEL_PROFILE=smoke $(PY) -m pytest --nbval-lax -p no:cacheprovider notebooks

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: setup
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .
