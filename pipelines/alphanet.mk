# The AlphaNet workflow end to end, as file targets:
#
#   data (shards) -> supernet checkpoint (trained in slices) -> sampled subnets with
#   estimated accuracy -> accuracy predictor -> evolutionary search on the predictor
#   -> the searched archs re-estimated on the supernet (search-acc.jsonl) -> the front of
#   everything measured (pareto.jsonl: no sampled or searched subnet beats a point of it)
#   -> plot.
#
#   make -f pipelines/alphanet.mk            # demo data and space (about 12 min on 2 cores, BENCHMARKS.md)
#   make -f pipelines/alphanet.mk quick      # the same chain with tiny budgets (minutes), in $(OUT)/quick
#   make -f pipelines/alphanet.mk -j2        # independent steps in parallel (data/training vs sampling)
#   make -f pipelines/alphanet.mk STEPS=600  # train further: only what depends on the checkpoint re-runs
#
# Build the tools first (Scripts/build; Scripts/demo does both). A second run does nothing;
# a newer checkpoint re-runs only what depends on it; changing a variable below re-runs the
# steps that use it (the settings of each step are kept in $(OUT)/.settings/). Every output
# is written under a temporary name and renamed, so an interrupted run leaves no half file.
# Training is resumable: interrupt it (Ctrl-C saves a checkpoint) and run make again.
#
# Variables (make VAR=value; defaults in brackets):
#   OUT           output directory [out]
#   BIN           directory of the tool binaries [.build/release]
#   DATASET       demo (Fashion-MNIST via Scripts/demo-data) or imagenet [demo]
#   DATA          where the shards go: DATA/train, DATA/val [$(OUT)/data]
#   SPACE         search space [the demo recipe's pipelines/spaces/demo.json, else pipelines/spaces/tiny.json;
#                 use pipelines/spaces/alphanet.json for ImageNet]
#   -- ImageNet (DATASET=imagenet) --
#   IMAGENET_TRAIN  ILSVRC2012_img_train.tar (or an ImageFolder directory)
#   IMAGENET_VAL    ILSVRC2012_img_val.tar
#   IMAGENET_LABELS validation labels: LOC_val_solution.csv (pack-imagenet --labels) [none]
#   IMAGE_SIZE      stored image side of the shards [32 demo; 288 imagenet: the largest resolution]
#   -- training (pipelines/demo-recipe.mk, when present, sets the demo's recipe) --
#   STEPS         train until this many steps in total [240]; raising it continues the training
#   TOTAL_STEPS   length of the learning-rate schedule [$(STEPS)]; set it to train in parts
#                 (make STEPS=100 TOTAL_STEPS=300, later make STEPS=300 TOTAL_STEPS=300).
#                 Changing it or any other training variable restarts the training.
#   SLICE         steps per training slice; a checkpoint and a validation line after each [80]
#   BATCH         images per step [64]      LR  base learning rate [0.1]
#   AUGMENT       train, auto-augment-tf, pad-crop or none [pad-crop]
#   KD            alpha, kl or none [alpha]  NUM_ARCH  subnets per step [4]
#   TRAIN_VAL_BATCHES  validation batches after each slice [8]
#   TRAIN_FLAGS   any further train-supernet options []
#   MPIRUN        launcher for data-parallel training, e.g. "mpirun -np 4" [none: one process];
#                 BATCH is then per rank, so changing the rank count restarts the training
#   CHECKPOINT    the supernet to evaluate [$(OUT)/supernet.safetensors.lz4, trained here];
#                 point it at an imported official checkpoint to skip training
#   -- evaluation and search (pipelines/demo-recipe.mk sets the demo's own values) --
#   N_SAMPLE      subnets sampled uniformly (plus the min and max subnets) [512]
#   SEED          seed of sampling and search [1]
#   CALIB_BATCHES BN recalibration batches per subnet [1]   EVAL_BATCH  batch size [128]
#   VAL_LIMIT     validation images per subnet [384; 0 = all]
#   (for ImageNet use the official CALIB_BATCHES=64 EVAL_BATCH=256 VAL_LIMIT=0)
#   PREDICTOR     fit-predictor model family: gbdt, rf or ridge [gbdt]
#   FEATURES      fit-predictor features, e.g. official,flops [official: the 31-number encoding]
#   BUDGET        evo-search evaluations (on the predictor) [3000]
#   FRONT_SIZE    searched archs re-estimated on the supernet: at most this many of the
#                 searched front, spread over its FLOPs range [0: the whole front]
#   FLOPS_MIN, FLOPS_MAX  FLOPs bounds of the search [the min and max subnets']
#
# Outputs under $(OUT): supernet.safetensors.lz4 (+ train/log.jsonl), subnets.jsonl,
# subnets-acc.jsonl, predictor.json, search-front.jsonl, search-acc.jsonl, pareto.jsonl, pareto.svg
# (and pareto.png where rsvg-convert or ImageMagick is installed), estimate-cache.jsonl.

include $(dir $(lastword $(MAKEFILE_LIST)))common.mk

# The demo's training recipe (its variables win over the defaults below); not for ImageNet.
ifneq ($(DATASET),imagenet)
-include pipelines/demo-recipe.mk
endif

OUT ?= out
BIN ?= .build/release
DATASET ?= demo
DATA ?= $(OUT)/data
SPACE ?= pipelines/spaces/tiny.json
IMAGENET_TRAIN ?=
IMAGENET_VAL ?=
IMAGENET_LABELS ?=
ifeq ($(DATASET),imagenet)
IMAGE_SIZE ?= 288
else
IMAGE_SIZE ?= 32
endif
STEPS ?= 240
TOTAL_STEPS ?= $(STEPS)
SLICE ?= 80
BATCH ?= 64
LR ?= 0.1
AUGMENT ?= pad-crop
KD ?= alpha
NUM_ARCH ?= 4
TRAIN_VAL_BATCHES ?= 8
TRAIN_FLAGS ?=
MPIRUN ?=
CHECKPOINT ?= $(OUT)/supernet.safetensors.lz4
N_SAMPLE ?= 512
SEED ?= 1
CALIB_BATCHES ?= 1
EVAL_BATCH ?= 128
VAL_LIMIT ?= 384
PREDICTOR ?= gbdt
FEATURES ?= official
BUDGET ?= 3000
FRONT_SIZE ?= 0
FLOPS_MIN ?=
FLOPS_MAX ?=
ESTIMATE_ACC ?= $(BIN)/estimate-acc

TRAIN := $(DATA)/train/index.json
VAL := $(DATA)/val/index.json

# Settings of each step (see common.mk): a step re-runs when its settings change.
SETTINGS := $(OUT)/.settings
$(eval $(call settings,recipe,space=$(SPACE) size=$(IMAGE_SIZE) total=$(TOTAL_STEPS) batch=$(BATCH) lr=$(LR) augment=$(AUGMENT) kd=$(KD) num_arch=$(NUM_ARCH) flags=$(TRAIN_FLAGS) mpirun=$(MPIRUN)))
$(eval $(call settings,steps,$(STEPS)))
$(eval $(call settings,sample,space=$(SPACE) n=$(N_SAMPLE) seed=$(SEED)))
$(eval $(call settings,estimate,checkpoint=$(CHECKPOINT) data=$(DATA) calib=$(CALIB_BATCHES) batch=$(EVAL_BATCH) val_limit=$(VAL_LIMIT)))
$(eval $(call settings,predictor,model=$(PREDICTOR) features=$(FEATURES) seed=$(SEED)))
$(eval $(call settings,search,model=$(PREDICTOR) budget=$(BUDGET) seed=$(SEED) flops=$(FLOPS_MIN)..$(FLOPS_MAX) front=$(FRONT_SIZE)))

ESTIMATE = flock $(OUT)/estimate-cache.lock $(ESTIMATE_ACC) --checkpoint $(CHECKPOINT) --space $(SPACE) \
	--calib $(DATA)/train --val $(DATA)/val --calib-batches $(CALIB_BATCHES) --batch-size $(EVAL_BATCH) \
	$(if $(filter-out 0,$(VAL_LIMIT)),--val-limit $(VAL_LIMIT)) --cache $(OUT)/estimate-cache.jsonl

PNG_CONVERT = if command -v rsvg-convert >/dev/null; then rsvg-convert -o $@.tmp.png $< && mv $@.tmp.png $@; \
	elif command -v convert >/dev/null && convert $< $@.tmp.png 2>/dev/null; then mv $@.tmp.png $@; \
	else echo "alphanet.mk: no SVG converter (apt-get install librsvg2-bin), skipping $@" >&2; fi

# The PNG is made only where a converter is installed (decided when make starts).
PNG := $(if $(shell command -v rsvg-convert || command -v convert),$(OUT)/pareto.png)

# The tools must be built; checked when make starts, unless only cleaning.
TOOLS := pack-imagenet train-supernet sample-subnets fit-predictor predict-acc evo-search pareto-front plot-pareto
MISSING := $(filter-out $(wildcard $(TOOLS:%=$(BIN)/%) $(ESTIMATE_ACC)),$(TOOLS:%=$(BIN)/%) $(ESTIMATE_ACC))
ifneq ($(MISSING),)
ifneq ($(filter-out clean-results,$(or $(MAKECMDGOALS),all)),)
$(error missing $(MISSING): run Scripts/build first (or give BIN=DIR))
endif
endif

SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -ec

.PHONY: all quick clean-results
.DELETE_ON_ERROR:

all: $(OUT)/pareto.jsonl $(OUT)/pareto.svg $(PNG)

# The same chain with tiny budgets, in its own directory, sharing the demo data.
quick:
	$(MAKE) -f $(firstword $(MAKEFILE_LIST)) OUT=$(OUT)/quick DATA=$(DATA) \
		STEPS=20 TOTAL_STEPS=20 SLICE=10 TRAIN_VAL_BATCHES=2 N_SAMPLE=64 CALIB_BATCHES=1 EVAL_BATCH=64 \
		VAL_LIMIT=256 BUDGET=300

# --- data --------------------------------------------------------------------------
ifeq ($(DATASET),imagenet)
$(TRAIN):
	$(BIN)/pack-imagenet --size $(IMAGE_SIZE) --split train -o $(DATA)/train $(IMAGENET_TRAIN)
$(VAL):
	$(BIN)/pack-imagenet --size $(IMAGE_SIZE) --split val $(if $(IMAGENET_LABELS),--labels $(IMAGENET_LABELS)) -o $(DATA)/val $(IMAGENET_VAL)
else
# pack-imagenet replaces each output directory as a whole, so the pair appears atomically.
$(TRAIN) $(VAL) &:
	$(DEMO_DATA)
endif

# --- supernet ----------------------------------------------------------------------
# Trained in slices of SLICE steps on a working checkpoint ($(OUT)/train/), which
# train-supernet resumes exactly; each slice ends with a checkpoint and a validation line
# in train/log.jsonl. The result is hard-linked (train-supernet replaces the working file
# by rename, so the link keeps this version) under its final name.
# A changed recipe (anything but STEPS) starts the training afresh.
$(OUT)/supernet.safetensors.lz4: $(TRAIN) $(VAL) $(SETTINGS)/recipe $(SETTINGS)/steps
	@mkdir -p $(OUT)/train
	@[ ! -f $(OUT)/train/supernet.safetensors.lz4 ] || [ $(OUT)/train/supernet.safetensors.lz4 -nt $(SETTINGS)/recipe ] || \
		{ echo "alphanet.mk: training recipe changed: training from scratch" >&2; rm -f $(OUT)/train/supernet.safetensors.lz4 $(OUT)/train/log.jsonl; }
	s=0; while [ $$s -lt $(STEPS) ]; do \
		s=$$((s + $(SLICE))); [ $$s -gt $(STEPS) ] && s=$(STEPS); \
		echo "alphanet.mk: training until step $$s of $(STEPS)" >&2; \
		$(MPIRUN) $(BIN)/train-supernet --space $(SPACE) --data $(DATA)/train --val $(DATA)/val \
			--checkpoint $(OUT)/train/supernet.safetensors.lz4 --steps $$s --total-steps $(TOTAL_STEPS) \
			--batch-size $(BATCH) --lr $(LR) --augment $(AUGMENT) --kd $(KD) --num-arch $(NUM_ARCH) \
			--save-every $(SLICE) --val-batches $(TRAIN_VAL_BATCHES) $(TRAIN_FLAGS) \
			>> $(OUT)/train/log.jsonl || exit $$?; \
	done
	ln -f $(OUT)/train/supernet.safetensors.lz4 $@.tmp 2>/dev/null || cp $(OUT)/train/supernet.safetensors.lz4 $@.tmp
	mv $@.tmp $@

# --- sampled subnets and their accuracy ---------------------------------------------
$(OUT)/subnets.jsonl: $(SPACE) $(SETTINGS)/sample
	$(BIN)/sample-subnets --space $(SPACE) --min --max -n $(N_SAMPLE) --seed $(SEED) --unique > $@.tmp
	mv $@.tmp $@

$(OUT)/subnets-acc.jsonl: $(OUT)/subnets.jsonl $(CHECKPOINT) $(VAL) $(SETTINGS)/estimate
	$(ESTIMATE) < $< > $@.tmp
	mv $@.tmp $@

# --- predictor and search ------------------------------------------------------------
$(OUT)/predictor.json: $(OUT)/subnets-acc.jsonl $(SETTINGS)/predictor
	$(BIN)/fit-predictor --model $(PREDICTOR) --features $(FEATURES) --seed $(SEED) -o $@ $< 2> $(OUT)/predictor-report.txt || { cat $(OUT)/predictor-report.txt >&2; exit 1; }
	@cat $(OUT)/predictor-report.txt >&2

# The search state resumes an interrupted search; it is dropped when the predictor is
# newer than it (a different predictor is a different search).
$(OUT)/search-front.jsonl: $(OUT)/predictor.json $(SETTINGS)/search
	[ $(OUT)/search.state -nt $(OUT)/predictor.json ] && [ $(OUT)/search.state -nt $(SETTINGS)/search ] || rm -f $(OUT)/search.state
	$(BIN)/evo-search --space $(SPACE) --predictor $< --budget $(BUDGET) --seed $(SEED) \
		$(if $(FLOPS_MIN),--flops-min $(FLOPS_MIN)) $(if $(FLOPS_MAX),--flops-max $(FLOPS_MAX)) \
		$(if $(filter-out 0,$(FRONT_SIZE)),--front-size $(FRONT_SIZE)) --state $(OUT)/search.state -o $@

# The searched archs re-estimated on the supernet: acc1_pred is the predictor's value the
# search saw, acc1 (acc5, loss) the supernet's.
$(OUT)/search-acc.jsonl: $(OUT)/search-front.jsonl $(OUT)/predictor.json $(CHECKPOINT) $(VAL) $(SETTINGS)/estimate
	$(BIN)/predict-acc --predictor $(OUT)/predictor.json $< | $(ESTIMATE) > $@.tmp
	mv $@.tmp $@

# The front of what was measured, all on the same images: a searched arch that the
# supernet scores below a sampled subnet with no more FLOPs (the min subnet, say) is not
# part of it, and a sampled subnet that no searched arch beats is.
$(OUT)/pareto.jsonl: $(OUT)/search-acc.jsonl $(OUT)/subnets-acc.jsonl
	$(BIN)/pareto-front $^ > $@.tmp
	mv $@.tmp $@

# --- plot ------------------------------------------------------------------------------
$(OUT)/pareto.svg: $(OUT)/subnets-acc.jsonl $(OUT)/search-acc.jsonl $(OUT)/pareto.jsonl
	$(BIN)/plot-pareto --points $(OUT)/subnets-acc.jsonl --searched $(OUT)/search-acc.jsonl --front $(OUT)/pareto.jsonl \
		--title "AlphaNet: top-1 vs MFLOPs ($(notdir $(SPACE)), checkpoint $(notdir $(CHECKPOINT)))" -o $@

$(OUT)/pareto.png: $(OUT)/pareto.svg
	@$(PNG_CONVERT)

# Removes the results but keeps the data and the checkpoint.
clean-results:
	rm -rf $(OUT)/subnets.jsonl $(OUT)/subnets-acc.jsonl $(OUT)/predictor.json $(OUT)/predictor-report.txt \
		$(OUT)/search-front.jsonl $(OUT)/search.state $(OUT)/search-acc.jsonl $(OUT)/pareto.jsonl $(OUT)/pareto.svg $(OUT)/pareto.png
