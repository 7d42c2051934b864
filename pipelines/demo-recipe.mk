# Demo recipe: Fashion-MNIST (Scripts/demo-data) at 32 px, pipelines/spaces/demo.json, on 2
# cores. Included by the pipeline; every variable can be overridden (make STEPS=2000 ...).
# Measured (BENCHMARKS.md "Demo recipe"): Scripts/demo from a fresh clone in 12 min 29 s on
# 2 quiet cores (the build included); the max subnet reaches 90.1% and the 8 px min subnet
# 80.0% top-1 on all 10,000 validation images, and the predictor's 5-fold CV Kendall tau is
# 0.77 (estimate-acc with whole-image evaluation, which --transform auto picks for
# --augment none).
#
# Why not the official ImageNet defaults: with them (lr 0.1 + value clipping 1.0,
# alpha-divergence KD, dropout/drop-connect, 750 steps of 64) the official code reaches
# only 63% / 60% (DESIGN.md). On this small data the loss stalls at lr >= 0.05 and only
# falls once the cosine schedule has brought the rate down, so the demo trains at a
# low rate from the start, with more, smaller steps in the same time.

# Sandwich steps (the lr schedule spans all of them) and images per step.
STEPS ?= 2200
BATCH ?= 32
# Base learning rate (SGD, Nesterov momentum 0.9; not scaled below batch 256).
LR ?= 0.015
# Linear warm-up steps, then cosine decay to 0.
WARMUP ?= 30
# Augmentation: none (less than one epoch is seen; pad-crop only slows learning here).
AUGMENT ?= none
# Distillation of the smaller subnets from the largest: kl (AttentiveNAS in-place KD);
# alpha (AlphaNet's adaptive alpha-divergence) learns as well but needs the clipping.
KD ?= kl
# Gradient clipping by value (0: off).
GRAD_CLIP ?= 0
# Regularisation of the largest subnet (off: the demo is far from overfitting).
DROPOUT ?= 0
DROP_CONNECT ?= 0
# Subnets per step: largest, NUM_ARCH - 2 random, smallest (3: a step costs ~0.8 of 4 subnets,
# so more steps fit the budget; measured better than 4 at equal time).
NUM_ARCH ?= 3
SEED ?= 0

# Training slices: four checkpoints along the way.
SLICE ?= 550

# The space: tiny.json's stages with inputs of 8-32 px. At 24-32 px (tiny.json's own range)
# a demo-length training leaves the middle subnets within about a point of each other,
# mostly noise, and no predictor ranks them (CV tau 0.13-0.39); below 16 px accuracy falls
# with the input size, which the predictor can learn.
SPACE ?= pipelines/spaces/demo.json
# Estimation: fewer subnets, each measured well (the 10,000 validation images give each
# estimate a 95% interval of about +-0.8 points; 384 images gave +-4): 128 sampled subnets
# plus the min and max, BN recalibrated on 4 batches of 128 (8 of 256 moved estimates by
# 0.17 points sd and did not change the ranking).
N_SAMPLE ?= 128
CALIB_BATCHES ?= 4
EVAL_BATCH ?= 128
VAL_LIMIT ?= 0
# The predictor sees FLOPs besides the arch encoding (gbdt CV tau 0.73-0.77 against
# 0.69-0.71 without, over five fold assignments; BENCHMARKS.md "Demo front").
FEATURES ?= official,flops
# Searched archs re-estimated: at most 32, spread over the searched front (the whole front
# held ~130, six minutes of estimation for points a plot cannot tell apart).
FRONT_SIZE ?= 32

# What the pipeline passes to train-supernet besides steps, batch, lr, augment, kd, num-arch.
TRAIN_FLAGS ?= --warmup-steps $(WARMUP) --grad-clip $(GRAD_CLIP) --dropout $(DROPOUT) \
	--drop-connect $(DROP_CONNECT) --seed $(SEED)
