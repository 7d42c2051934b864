# AlphaNet's claims measured on the demo: the distillation of the smaller subnets from the
# largest (--kd alpha: the adaptive alpha-divergence; kl: in-place KD; none: labels only),
# and AttentiveNAS's sampler (attentive-bestup, with alpha KD) as a fourth arm, each trained
# SEEDS times with the same recipe and budget, for the NAS space and the slimmable space.
#
#   make -f pipelines/ablation.mk            # 21 runs of STEPS steps (BENCHMARKS.md for the time)
#   make -f pipelines/ablation.mk quick      # the same with tiny budgets and 2 seeds, in $(OUT)/quick
#
# Per space, the same archs are measured in every run (archs.jsonl): the min and max subnets,
# three fixed middles (mid1-mid3: the 25/50/75% FLOPs quantiles of ARCH_POOL uniform samples,
# seed ARCH_SEED) and N_FRONT more spread over FLOPs, on the validation set (VAL_LIMIT=0: all
# of it) after BN recalibration on CALIB_BATCHES batches. compare-runs summarises each arm:
# top-1 of each named subnet, mean +- sample std over the seeds, and the hypervolume of each
# run's front over all measured archs. Outputs under $(OUT): SPACE/ARM/seedK/ (checkpoint, log,
# acc.jsonl), SPACE/summary.jsonl, SPACE/table.md, SPACE/ablation.svg, and table.md (both).
# Build the tools first (Scripts/build). Training resumes where it stopped (make again); a
# changed recipe trains from scratch; outputs are written under temporary names and renamed.
#
# Variables (make VAR=value; defaults in brackets):
#   OUT  [out/ablation]   BIN  [.build/release]   DATA  demo shards [out/data, made if missing]
#   SEEDS [0 1 2]   KDS [alpha kl none]   ATTENTIVE  the attentive arm on the NAS space [yes]
#   STEPS [300] per run, the whole schedule   BATCH [32]   LR [0.015]   WARMUP [30]
#   GRAD_CLIP [1.0: the official clipping, which alpha KD needs]   NUM_ARCH [3]   AUGMENT [none]
#   CALIB_BATCHES [8]   EVAL_BATCH [128]   VAL_LIMIT [0 = all 10,000]   N_FRONT [4]
#   ARCH_POOL [200]   ARCH_SEED [7]   THREADS  kernel threads per tool [all cores]
#   NAS_SPACE [pipelines/spaces/tiny.json]   SLIM_SPACE [pipelines/spaces/slimmable.json]

include $(dir $(lastword $(MAKEFILE_LIST)))common.mk

OUT ?= out/ablation
BIN ?= .build/release
DATA ?= out/data
IMAGE_SIZE ?= 32
SEEDS ?= 0 1 2
KDS ?= alpha kl none
ATTENTIVE ?= yes
STEPS ?= 300
BATCH ?= 32
LR ?= 0.015
WARMUP ?= 30
GRAD_CLIP ?= 1.0
NUM_ARCH ?= 3
AUGMENT ?= none
CALIB_BATCHES ?= 8
EVAL_BATCH ?= 128
VAL_LIMIT ?= 0
N_FRONT ?= 4
ARCH_POOL ?= 200
ARCH_SEED ?= 7
THREADS ?=
NAS_SPACE ?= pipelines/spaces/tiny.json
SLIM_SPACE ?= pipelines/spaces/slimmable.json

TOOLS := train-supernet sample-subnets estimate-acc compare-runs plot-pareto pack-imagenet
MISSING := $(filter-out $(wildcard $(TOOLS:%=$(BIN)/%)),$(TOOLS:%=$(BIN)/%))
ifneq ($(MISSING),)
$(error missing $(MISSING): run Scripts/build first (or give BIN=DIR))
endif

SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -ec
.DELETE_ON_ERROR:
.PHONY: all quick

# The recipe every run shares; a change restarts the training (see below).
SETTINGS := $(OUT)/.settings
RECIPE := steps=$(STEPS) batch=$(BATCH) lr=$(LR) warmup=$(WARMUP) clip=$(GRAD_CLIP) num_arch=$(NUM_ARCH) augment=$(AUGMENT)
EVALUATION := calib=$(CALIB_BATCHES) batch=$(EVAL_BATCH) val_limit=$(VAL_LIMIT)
ARCHS := pool=$(ARCH_POOL) seed=$(ARCH_SEED) front=$(N_FRONT)
$(eval $(call settings,recipe,$(RECIPE)))
$(eval $(call settings,evaluation,$(EVALUATION)))
$(eval $(call settings,archs,$(ARCHS)))

THREADS_FLAG := $(if $(THREADS),--threads $(THREADS))
TRAIN_VAL := $(DATA)/train/index.json $(DATA)/val/index.json

# space name -> space file, and its arms
space_file = $(if $(filter nas,$1),$(NAS_SPACE),$(SLIM_SPACE))
arms_nas := $(KDS) $(if $(filter yes,$(ATTENTIVE)),attentive)
arms_slimmable := $(KDS)
arm_flags = $(if $(filter attentive,$1),--kd alpha --sampler attentive-bestup,--kd $1)

all: $(OUT)/table.md $(OUT)/nas/ablation.svg $(OUT)/slimmable/ablation.svg

quick:
	$(MAKE) -f $(firstword $(MAKEFILE_LIST)) OUT=$(OUT)/quick DATA=$(DATA) BIN=$(BIN) \
		STEPS=6 WARMUP=2 SEEDS="0 1" CALIB_BATCHES=1 EVAL_BATCH=64 VAL_LIMIT=256 N_FRONT=3 ARCH_POOL=24

$(TRAIN_VAL) &:
	$(DEMO_DATA)

# The archs every run of a space is measured on, with their roles: sample-subnets writes the
# min and max first; the pool sorted by FLOPs gives the three middles and N_FRONT more.
ROLES_JQ := (.[0] + {role: "min"}), (.[1] + {role: "max"}), ((.[2:] | sort_by(.flops)) as $$s | ($$s | length) as $$n | ($$s[($$n / 4 | floor)] + {role: "mid1"}), ($$s[($$n / 2 | floor)] + {role: "mid2"}), ($$s[($$n * 3 / 4 | floor)] + {role: "mid3"}), ($$s[range($$front) as $$k | (($$k + 0.5) * $$n / $$front | floor)]))
$(OUT)/%/archs.jsonl: $(SETTINGS)/archs
	@mkdir -p $(@D)
	$(BIN)/sample-subnets --space $(call space_file,$*) --min --max -n $(ARCH_POOL) --seed $(ARCH_SEED) --unique \
	| jq -s -c --argjson front $(N_FRONT) '$(ROLES_JQ)' > $@.tmp
	mv $@.tmp $@

# One run: SPACE ARM SEED. Trained on a working checkpoint (train.safetensors.lz4, which
# train-supernet resumes exactly), then hard-linked under its final name.
define run
$(OUT)/$1/$2/seed$3/supernet.safetensors.lz4: $(TRAIN_VAL) $(SETTINGS)/recipe
	@mkdir -p $$(@D)
	@[ ! -f $$(@D)/train.safetensors.lz4 ] || [ $$(@D)/train.safetensors.lz4 -nt $(SETTINGS)/recipe ] || \
		{ echo "ablation.mk: recipe changed: $1/$2/seed$3 from scratch" >&2; rm -f $$(@D)/train.safetensors.lz4 $$(@D)/log.jsonl; }
	@echo "ablation.mk: training $1 $2 seed $3 ($(STEPS) steps)" >&2
	$(BIN)/train-supernet --space $(call space_file,$1) --data $(DATA)/train --checkpoint $$(@D)/train.safetensors.lz4 \
		--steps $(STEPS) --total-steps $(STEPS) --batch-size $(BATCH) --lr $(LR) --warmup-steps $(WARMUP) \
		--grad-clip $(GRAD_CLIP) --dropout 0 --drop-connect 0 --num-arch $(NUM_ARCH) --augment $(AUGMENT) \
		$(call arm_flags,$2) --seed $3 --log-every 50 $(THREADS_FLAG) >> $$(@D)/log.jsonl
	ln -f $$(@D)/train.safetensors.lz4 $$@.tmp 2>/dev/null || cp $$(@D)/train.safetensors.lz4 $$@.tmp
	mv $$@.tmp $$@

$(OUT)/$1/$2/seed$3/acc.jsonl: $(OUT)/$1/$2/seed$3/supernet.safetensors.lz4 $(OUT)/$1/archs.jsonl $(SETTINGS)/evaluation
	$(BIN)/estimate-acc --checkpoint $$< --calib $(DATA)/train --val $(DATA)/val --calib-batches $(CALIB_BATCHES) \
		--batch-size $(EVAL_BATCH) $(if $(filter-out 0,$(VAL_LIMIT)),--val-limit $(VAL_LIMIT)) $(THREADS_FLAG) \
		< $(OUT)/$1/archs.jsonl > $$@.tmp
	mv $$@.tmp $$@
endef
$(foreach space,nas slimmable,$(foreach arm,$(arms_$(space)),$(foreach seed,$(SEEDS),$(eval $(call run,$(space),$(arm),$(seed))))))

# Per space: the comparison (JSON lines and a table) and its plot.
runs_of = $(foreach arm,$(arms_$1),$(foreach seed,$(SEEDS),$(arm)=$(OUT)/$1/$(arm)/seed$(seed)/acc.jsonl))
define summary
$(OUT)/$1/summary.jsonl $(OUT)/$1/table.md &: $(foreach r,$(call runs_of,$1),$(lastword $(subst =, ,$r)))
	$(BIN)/compare-runs $(call runs_of,$1) --title "$2 ($(notdir $(call space_file,$1)), $(STEPS) steps, seeds $(SEEDS))" \
		--markdown $(OUT)/$1/table.md > $(OUT)/$1/summary.jsonl.tmp
	mv $(OUT)/$1/summary.jsonl.tmp $(OUT)/$1/summary.jsonl

$(OUT)/$1/ablation.svg: $(OUT)/$1/summary.jsonl
	$(BIN)/plot-pareto --history $$< --x flops --y acc1_mean --y-error acc1_std --group arm --color-by arm \
		--y-label "top-1 accuracy (%), mean over seeds" --title "$2: top-1 of min, mid1-3, max (mean, bars: std over seeds $(SEEDS))" -o $$@
endef
$(eval $(call summary,nas,NAS space))
$(eval $(call summary,slimmable,Slimmable space))

$(OUT)/table.md: $(OUT)/nas/table.md $(OUT)/slimmable/table.md
	{ cat $(OUT)/nas/table.md; echo; cat $(OUT)/slimmable/table.md; } > $@.tmp
	mv $@.tmp $@
