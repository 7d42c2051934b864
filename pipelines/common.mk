# What the pipelines share (included by alphanet.mk, ablation.mk and ranking.mk).

# $(eval $(call settings,NAME,TEXT)): $(SETTINGS)/NAME holds the settings of one step and is
# rewritten (at parse time, so its time stamp moves) only when TEXT differs: a step that
# depends on it re-runs exactly when its settings change.
define settings
$(shell mkdir -p $(SETTINGS))
ifneq ($$(file < $(SETTINGS)/$1),$2)
$$(file > $(SETTINGS)/$1,$2)
endif
endef

# The demo data (Fashion-MNIST as shards, Scripts/demo-data); pack-imagenet replaces each
# output directory as a whole, so the pair appears atomically.
DEMO_DATA = PACK=$(BIN)/pack-imagenet SIZE=$(IMAGE_SIZE) Scripts/demo-data $(DATA)
