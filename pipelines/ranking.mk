# Does the supernet rank subnets as stand-alone training does? (K-shot NAS's question.)
# N_SUBNETS subnets spread over FLOPs are each trained stand-alone (train-supernet --arch)
# for STANDALONE_STEPS steps; one supernet per K in KSHOTS (K = 1: the plain supernet; K > 1:
# train-supernet --kshot K) is trained for SUPERNET_STEPS with the same recipe, seed and budget;
# all are measured on the validation set after BN recalibration, and rank-correlation compares
# each supernet's accuracies of the subnets with their stand-alone ones (Kendall tau, Spearman
# rho, top-k overlap, bootstrap 95% intervals). The stand-alone ranking is itself noisy: every
# subnet is trained stand-alone a second time with REPLICATE_SEED, and the two stand-alone
# rankings' correlation (the table's last row) is the most a supernet can be expected to reach.
#
#   make -f pipelines/ranking.mk            # demo data, tiny space (BENCHMARKS.md for the time)
#   make -f pipelines/ranking.mk quick      # tiny budgets, in $(OUT)/quick
#
# Outputs under $(OUT): archs.jsonl (the subnets), standalone/N/ (checkpoint, log, acc.jsonl),
# standalone-acc.jsonl, the same under standalone-seedR/ and standalone-seedR-acc.jsonl with
# correlation-replicate.json (seed R against seed SEED), and per K: supernet-kK/ (checkpoint, log), supernet-kK-acc.jsonl,
# correlation-kK.json; then correlation.jsonl (one line per K, with `kshot`), table.md (one
# row per K, and the replicate's) and ranking.svg (supernet vs stand-alone top-1 per subnet, one colour per K).
#
# Variables (make VAR=value; defaults in brackets):
#   OUT [out/ranking]  BIN [.build/release]  DATA demo shards [out/data, made if missing]
#   SPACE [pipelines/spaces/tiny.json]  N_SUBNETS [12]  ARCH_POOL [200]  ARCH_SEED [11]
#   STANDALONE_STEPS [1875: one epoch]  SUPERNET_STEPS [1200]  KSHOTS [1 4]  BATCH [32]  LR [0.015]
#   WARMUP [30]  KD [kl]  NUM_ARCH [3]  SEED [0]  REPLICATE_SEED [1; empty: no replicate]  CALIB_BATCHES [8]  EVAL_BATCH [128]
#   VAL_LIMIT [0 = all]  THREADS  kernel threads per tool [all cores]   TOP_K [3]

include $(dir $(lastword $(MAKEFILE_LIST)))common.mk

OUT ?= out/ranking
BIN ?= .build/release
DATA ?= out/data
IMAGE_SIZE ?= 32
SPACE ?= pipelines/spaces/tiny.json
N_SUBNETS ?= 12
ARCH_POOL ?= 200
ARCH_SEED ?= 11
STANDALONE_STEPS ?= 1875
SUPERNET_STEPS ?= 1200
KSHOTS ?= 1 4
BATCH ?= 32
LR ?= 0.015
WARMUP ?= 30
KD ?= kl
NUM_ARCH ?= 3
SEED ?= 0
REPLICATE_SEED ?= 1
CALIB_BATCHES ?= 8
EVAL_BATCH ?= 128
VAL_LIMIT ?= 0
TOP_K ?= 3
THREADS ?=

TOOLS := train-supernet sample-subnets estimate-acc rank-correlation plot-pareto pack-imagenet
MISSING := $(filter-out $(wildcard $(TOOLS:%=$(BIN)/%)),$(TOOLS:%=$(BIN)/%))
ifneq ($(MISSING),)
$(error missing $(MISSING): run Scripts/build first (or give BIN=DIR))
endif

SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -ec
.DELETE_ON_ERROR:
.PHONY: all quick

SETTINGS := $(OUT)/.settings
RECIPE := batch=$(BATCH) lr=$(LR) warmup=$(WARMUP) seed=$(SEED) space=$(SPACE)
$(eval $(call settings,archs,space=$(SPACE) n=$(N_SUBNETS) pool=$(ARCH_POOL) seed=$(ARCH_SEED)))
$(eval $(call settings,standalone,$(RECIPE) steps=$(STANDALONE_STEPS)))
$(if $(REPLICATE_SEED),$(eval $(call settings,standalone-seed$(REPLICATE_SEED),$(RECIPE:seed=%=seed=$(REPLICATE_SEED)) steps=$(STANDALONE_STEPS))))
$(foreach k,$(KSHOTS),$(eval $(call settings,supernet-k$(k),$(RECIPE) steps=$(SUPERNET_STEPS) kd=$(KD) num_arch=$(NUM_ARCH) kshot=$(k))))
$(eval $(call settings,evaluation,calib=$(CALIB_BATCHES) batch=$(EVAL_BATCH) val_limit=$(VAL_LIMIT)))

THREADS_FLAG := $(if $(THREADS),--threads $(THREADS))
TRAIN_VAL := $(DATA)/train/index.json $(DATA)/val/index.json
COMMON := --space $(SPACE) --data $(DATA)/train --batch-size $(BATCH) --lr $(LR) --warmup-steps $(WARMUP) \
	--dropout 0 --drop-connect 0 --augment none --log-every 50 $(THREADS_FLAG)
ESTIMATE = $(BIN)/estimate-acc --calib $(DATA)/train --val $(DATA)/val --calib-batches $(CALIB_BATCHES) \
	--batch-size $(EVAL_BATCH) $(if $(filter-out 0,$(VAL_LIMIT)),--val-limit $(VAL_LIMIT)) $(THREADS_FLAG)
INDICES := $(shell seq 0 $$(($(N_SUBNETS) - 1)))

REPLICATE := $(if $(REPLICATE_SEED),standalone-seed$(REPLICATE_SEED))
REPLICATE_LABEL := stand-alone, seed $(REPLICATE_SEED)

all: $(OUT)/table.md $(OUT)/ranking.svg

quick:
	$(MAKE) -f $(firstword $(MAKEFILE_LIST)) OUT=$(OUT)/quick DATA=$(DATA) BIN=$(BIN) \
		N_SUBNETS=4 ARCH_POOL=24 STANDALONE_STEPS=4 SUPERNET_STEPS=6 WARMUP=1 CALIB_BATCHES=1 EVAL_BATCH=64 VAL_LIMIT=256 TOP_K=1

$(TRAIN_VAL) &:
	$(DEMO_DATA)

# N_SUBNETS archs evenly spread over the FLOPs-sorted pool (its ends included).
$(OUT)/archs.jsonl: $(SETTINGS)/archs
	@mkdir -p $(@D)
	$(BIN)/sample-subnets --space $(SPACE) --min --max -n $(ARCH_POOL) --seed $(ARCH_SEED) --unique \
	| jq -s -c --argjson n $(N_SUBNETS) 'sort_by(.flops) as $$s | range($$n) as $$i | $$s[($$i * ($$s | length - 1) / ($$n - 1) | round)]' > $@.tmp
	mv $@.tmp $@

# Subnet $1 trained stand-alone in $(OUT)/$2/$1 with seed $3 (working checkpoint resumed exactly,
# then linked), and measured.
define standalone
$(OUT)/$2/$1/supernet.safetensors.lz4: $(OUT)/archs.jsonl $(TRAIN_VAL) $(SETTINGS)/$2
	@mkdir -p $$(@D)
	@[ ! -f $$(@D)/train.safetensors.lz4 ] || { [ $$(@D)/train.safetensors.lz4 -nt $(SETTINGS)/$2 ] && [ $$(@D)/train.safetensors.lz4 -nt $(OUT)/archs.jsonl ]; } \
		|| rm -f $$(@D)/train.safetensors.lz4 $$(@D)/log.jsonl
	sed -n '$(shell echo $$(($1 + 1)))p' $(OUT)/archs.jsonl > $$(@D)/arch.jsonl.tmp
	mv $$(@D)/arch.jsonl.tmp $$(@D)/arch.jsonl
	@echo "ranking.mk: subnet $1 stand-alone ($(STANDALONE_STEPS) steps, seed $3)" >&2
	$(BIN)/train-supernet $(COMMON) --seed $3 --arch @$$(@D)/arch.jsonl --checkpoint $$(@D)/train.safetensors.lz4 \
		--steps $(STANDALONE_STEPS) --total-steps $(STANDALONE_STEPS) >> $$(@D)/log.jsonl
	ln -f $$(@D)/train.safetensors.lz4 $$@.tmp 2>/dev/null || cp $$(@D)/train.safetensors.lz4 $$@.tmp
	mv $$@.tmp $$@

$(OUT)/$2/$1/acc.jsonl: $(OUT)/$2/$1/supernet.safetensors.lz4 $(SETTINGS)/evaluation
	$(ESTIMATE) --checkpoint $$< < $(OUT)/$2/$1/arch.jsonl > $$@.tmp
	mv $$@.tmp $$@
endef
$(foreach i,$(INDICES),$(eval $(call standalone,$(i),standalone,$(SEED))))

$(OUT)/standalone-acc.jsonl: $(foreach i,$(INDICES),$(OUT)/standalone/$(i)/acc.jsonl)
	cat $^ > $@.tmp
	mv $@.tmp $@

ifneq ($(REPLICATE),)
$(foreach i,$(INDICES),$(eval $(call standalone,$(i),$(REPLICATE),$(REPLICATE_SEED))))

$(OUT)/$(REPLICATE)-acc.jsonl: $(foreach i,$(INDICES),$(OUT)/$(REPLICATE)/$(i)/acc.jsonl)
	cat $^ > $@.tmp
	mv $@.tmp $@

# The noise ceiling: the replicate's stand-alone accuracies against the first ones.
$(OUT)/correlation-replicate.json: $(OUT)/$(REPLICATE)-acc.jsonl $(OUT)/standalone-acc.jsonl
	$(BIN)/rank-correlation $^ --top-k $(TOP_K) | jq -c '{replicate_seed: $(REPLICATE_SEED)} + .' > $@.tmp
	mv $@.tmp $@
endif

# The supernet with K copies (K = 1: the plain supernet), trained with the working checkpoint
# resumed exactly, then linked; measured on archs.jsonl; its rank correlation.
define supernet
$(OUT)/supernet-k$1/supernet.safetensors.lz4: $(TRAIN_VAL) $(SETTINGS)/supernet-k$1
	@mkdir -p $$(@D)
	@[ ! -f $$(@D)/train.safetensors.lz4 ] || [ $$(@D)/train.safetensors.lz4 -nt $(SETTINGS)/supernet-k$1 ] || rm -f $$(@D)/train.safetensors.lz4 $$(@D)/log.jsonl
	@echo "ranking.mk: supernet K = $1 ($(SUPERNET_STEPS) steps)" >&2
	$(BIN)/train-supernet $(COMMON) --seed $(SEED) --kd $(KD) --num-arch $(NUM_ARCH) $(if $(filter-out 1,$1),--kshot $1) \
		--checkpoint $$(@D)/train.safetensors.lz4 --steps $(SUPERNET_STEPS) --total-steps $(SUPERNET_STEPS) >> $$(@D)/log.jsonl
	ln -f $$(@D)/train.safetensors.lz4 $$@.tmp 2>/dev/null || cp $$(@D)/train.safetensors.lz4 $$@.tmp
	mv $$@.tmp $$@

$(OUT)/supernet-k$1-acc.jsonl: $(OUT)/supernet-k$1/supernet.safetensors.lz4 $(OUT)/archs.jsonl $(SETTINGS)/evaluation
	$(ESTIMATE) --checkpoint $$< < $(OUT)/archs.jsonl > $$@.tmp
	mv $$@.tmp $$@

$(OUT)/correlation-k$1.json: $(OUT)/supernet-k$1-acc.jsonl $(OUT)/standalone-acc.jsonl
	$(BIN)/rank-correlation $$^ --top-k $(TOP_K) | jq -c '{kshot: $1} + .' > $$@.tmp
	mv $$@.tmp $$@
endef
$(foreach k,$(KSHOTS),$(eval $(call supernet,$(k))))

$(OUT)/correlation.jsonl: $(KSHOTS:%=$(OUT)/correlation-k%.json)
	cat $^ > $@.tmp
	mv $@.tmp $@

# One row per K, then the replicate's; each interval to two decimals.
TABLE_JQ := def ci(k): .[k] | map(. * 100 | round / 100) | join(" to "); "\#\#\# Supernet vs stand-alone ranking ($(notdir $(SPACE)), \(.[0].n) subnets, seed $(SEED))\n\n| supernet | steps | Kendall tau (95% CI) | Spearman rho (95% CI) | top-\(.[0].top_k) overlap (95% CI) |\n|---|---|---|---|---|\n" + (map("| \(if .kshot then "K = \(.kshot)" else "stand-alone, seed \(.replicate_seed)" end) | \(if .kshot then $$steps else $$sa end) | \(.kendall_tau * 1000 | round / 1000) (\(ci("kendall_tau_ci95"))) | \(.spearman_rho * 1000 | round / 1000) (\(ci("spearman_rho_ci95"))) | \(.top_k_overlap * 100 | round / 100) (\(ci("top_k_overlap_ci95"))) |") | join("\n")) + "\n\nStand-alone: \($$sa) steps per subnet\(if .[-1].kshot then "" else " (the last row: the same subnets trained again with seed \(.[-1].replicate_seed), against seed $(SEED): the noise of the stand-alone ranking itself)" end); all accuracies on the validation set after BN recalibration."

$(OUT)/table.md: $(OUT)/correlation.jsonl $(if $(REPLICATE),$(OUT)/correlation-replicate.json)
	cat $^ | jq -r -s --arg steps "$(SUPERNET_STEPS)" --arg sa "$(STANDALONE_STEPS)" '$(TABLE_JQ)' > $@.tmp
	mv $@.tmp $@

# Supernet accuracy against stand-alone accuracy, one dot per subnet and supernet, one colour
# per K, and the replicate's stand-alone accuracy
# in a colour of its own (how far two stand-alone trainings of one subnet lie apart).
POINT_JQ = '. as $$a | ($$sa[] | select([.resolution, .width, .depth, .kernel_size, .expand_ratio] == [$$a.resolution, $$a.width, $$a.depth, $$a.kernel_size, $$a.expand_ratio]) | .acc1) as $$s | $$a + {acc1_standalone: $$s, supernet: $$group}'
$(OUT)/ranking.svg: $(KSHOTS:%=$(OUT)/supernet-k%-acc.jsonl) $(OUT)/standalone-acc.jsonl $(if $(REPLICATE),$(OUT)/$(REPLICATE)-acc.jsonl)
	{ for k in $(KSHOTS); do \
		jq -c --slurpfile sa $(OUT)/standalone-acc.jsonl --arg group "K = $$k" $(POINT_JQ) $(OUT)/supernet-k$$k-acc.jsonl; \
	done; $(if $(REPLICATE),jq -c --slurpfile sa $(OUT)/standalone-acc.jsonl --arg group "$(REPLICATE_LABEL)" $(POINT_JQ) $(OUT)/$(REPLICATE)-acc.jsonl;) } > $(OUT)/ranking-points.jsonl.tmp
	mv $(OUT)/ranking-points.jsonl.tmp $(OUT)/ranking-points.jsonl
	$(BIN)/plot-pareto --history $(OUT)/ranking-points.jsonl --x acc1_standalone --y acc1 --group supernet --color-by supernet --scatter \
		--x-label "stand-alone top-1 (%)" --y-label "supernet (or replicate) top-1 (%)" --title "Supernet vs stand-alone accuracy ($(N_SUBNETS) subnets)" -o $@
