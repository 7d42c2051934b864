#!/usr/bin/env python3
"""The PyTorch side of `Scripts/bench train-step`, measured on this machine: seconds per
official AlphaNet sandwich step (train_alphanet.py's train_epoch body) for the cases A, B, C
of Sources/Benchmarks/TrainStepBench.swift: same space, batch, resolution and four subnets.

    git clone https://github.com/facebookresearch/AttentiveNAS /tmp/AttentiveNAS   # models/, solver/
    git clone https://github.com/facebookresearch/AlphaNet /tmp/AlphaNet           # loss_ops.py
    python3 Scripts/bench-torch-train.py --official /tmp/AttentiveNAS --alphanet /tmp/AlphaNet [--case A]

Scripts/bench-vs-torch runs it beside ours, in both allocator settings. Benchmark only (the
tools never use Python). The step, as the official one: zero_grad; the max subnet with
dropout 0.2 and drop-connect 0.2 (last two stages) against the labels
(CrossEntropyLossSmooth 0.1); the other three subnets without dropout against the max
subnet's detached logits (AdaptiveLossSoft, alpha -1..1, iw_clip 5); clip_grad_value_ 1.0;
SGD (momentum 0.9, Nesterov, weight decay 1e-5 on weights, none on BN and biases; the
official build_optimizer). Random images in [-1, 1] and random labels, fixed per run; one
JSON line per case with the median of --steps timed steps after --warmup.
"""
import argparse
import importlib.util
import json
import os
import statistics
import sys
import time
from types import SimpleNamespace

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STAGES = ["first_conv", "mb1", "mb2", "mb3", "mb4", "mb5", "mb6", "mb7", "last_conv"]
# AlphaNet A4 and A2 (official eval_alphanet_models.yml), as in TrainStepBench.swift.
A4 = dict(width=[16, 16, 24, 32, 64, 112, 192, 216, 1984], depth=[1, 3, 3, 4, 3, 5, 1],
          kernel_size=[3, 3, 3, 5, 3, 5, 3], expand_ratio=[1, 4, 4, 5, 4, 6, 6])
A2 = dict(width=[16, 16, 24, 32, 64, 112, 200, 224, 1984], depth=[1, 3, 3, 3, 3, 4, 1],
          kernel_size=[3, 3, 3, 3, 3, 5, 3], expand_ratio=[1, 4, 5, 4, 4, 6, 6])


def pick_arch(config, pick, resolution):
    """Every choice list of the supernet_config reduced by `pick` (a function of the sorted list)."""
    return dict(resolution=resolution,
                width=[pick(sorted(config[s]["c"])) for s in STAGES],
                depth=[pick(sorted(config[s]["d"])) for s in STAGES[1:-1]],
                kernel_size=[pick(sorted(config[s]["k"])) for s in STAGES[1:-1]],
                expand_ratio=[pick(sorted(config[s]["t"])) for s in STAGES[1:-1]])


def load_module(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--official", required=True, help="checkout of facebookresearch/AttentiveNAS (models/, solver/)")
    parser.add_argument("--alphanet", help="checkout of facebookresearch/AlphaNet (loss_ops.py; default: --official)")
    parser.add_argument("--case", action="append", choices=["A", "B", "C"], help="repeatable; default A, B, C")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args()
    for sub in ("models", "solver"):
        if not os.path.isdir(os.path.join(args.official, sub)):
            sys.exit(f"bench-torch-train: error: {args.official}: no {sub}/ package (give a checkout of AttentiveNAS)")
    loss_path = os.path.join(args.alphanet or args.official, "loss_ops.py")
    if not os.path.isfile(loss_path):
        sys.exit(f"bench-torch-train: error: {loss_path}: not found (give --alphanet, a checkout of AlphaNet)")
    sys.path.insert(0, args.official)
    import torch
    from models.attentive_nas_dynamic_model import AttentiveNasDynamicModel
    from solver.build import build_optimizer
    loss_ops = load_module("alphanet_loss_ops", loss_path)
    # The official config as attributes, as the inference benchmark builds it.
    namespace = load_module("bench_torch_infer", os.path.join(ROOT, "Scripts", "bench-torch-infer.py")).namespace

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(json.dumps({"bench": "torch_version", "torch": torch.__version__, "threads": torch.get_num_threads(),
                      "malloc_env": {k: v for k, v in os.environ.items() if k.startswith("MALLOC_")}}), flush=True)

    for name in args.case or ["A", "B", "C"]:
        tiny = name == "C"
        with open(os.path.join(ROOT, "pipelines", "spaces", "tiny.json" if tiny else "alphanet.json")) as f:
            space = json.load(f)
        config = space["supernet_config"]
        res = 128 if name == "B" else (32 if tiny else 64)
        batch = 64 if tiny else 32
        if tiny:
            archs = [("max", pick_arch(config, lambda c: c[-1], res)), ("mid", pick_arch(config, lambda c: c[len(c) // 2], res)),
                     ("second", pick_arch(config, lambda c: c[max(0, len(c) - 2)], res)), ("min", pick_arch(config, lambda c: c[0], res))]
        else:
            archs = [("max", pick_arch(config, lambda c: c[-1], res)), ("A4", dict(A4, resolution=res)),
                     ("A2", dict(A2, resolution=res)), ("min", pick_arch(config, lambda c: c[0], res))]
        model = AttentiveNasDynamicModel(namespace(config), n_classes=space["n_classes"],
                                         bn_param=(space["bn_momentum"], space["bn_eps"]))
        model.train()
        optimizer = build_optimizer(SimpleNamespace(weight_decay_weight=1e-5, weight_decay_bn_bias=0.0,
                                                    lr_scheduler=SimpleNamespace(base_lr=0.01),
                                                    optimizer=SimpleNamespace(method="sgd", momentum=0.9, nesterov=True)), model)
        criterion = loss_ops.CrossEntropyLossSmooth(0.1)
        soft_criterion = loss_ops.AdaptiveLossSoft(-1.0, 1.0, 5.0)
        images = torch.rand(batch, 3, res, res) * 2 - 1
        labels = torch.randint(0, space["n_classes"], (batch,))

        def step():
            t0 = time.perf_counter()
            optimizer.zero_grad()
            model.set_active_subnet(**archs[0][1])
            model.set_dropout_rate(0.2, 0.2, True)
            output = model(images)
            criterion(output, labels).backward()
            with torch.no_grad():
                soft_logits = output.clone().detach()
            model.set_dropout_rate(0, 0, True)
            for _, arch in archs[1:]:
                model.set_active_subnet(**arch)
                soft_criterion(model(images), soft_logits).backward()
            torch.nn.utils.clip_grad_value_(model.parameters(), 1.0)
            optimizer.step()
            return time.perf_counter() - t0

        for _ in range(args.warmup):
            step()
        times = [step() for _ in range(args.steps)]
        print(json.dumps({"bench": "torch_train_step", "case": name, "batch": batch, "resolution": res,
                          "subnets": "+".join(a for a, _ in archs), "s_per_step": round(statistics.median(times), 4),
                          "s_min": round(min(times), 4), "s_max": round(max(times), 4), "threads": args.threads}), flush=True)


if __name__ == "__main__":
    main()
