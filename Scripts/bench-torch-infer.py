#!/usr/bin/env python3
"""The PyTorch side of `Scripts/bench infer`, measured on this machine: images/s of the
official AttentiveNAS/AlphaNet static subnets in eval mode under no_grad, for the same
subnets, resolutions and batch sizes as Sources/Benchmarks/InferBench.swift.

    git clone https://github.com/facebookresearch/AttentiveNAS /tmp/AttentiveNAS   # the official code
    python3 Scripts/bench-torch-infer.py --official /tmp/AttentiveNAS [--threads 2] [--seconds 4]

glibc's allocator returns freed activations to the system by default, and PyTorch then pays
page faults on every batch; for its best figure run it with
MALLOC_TRIM_THRESHOLD_=18446744073709551615 MALLOC_MMAP_THRESHOLD_=4294967296 MALLOC_TOP_PAD_=1073741824
(both figures are in BENCHMARKS.md).

Benchmark only (the tools never use Python). Needs torch and the official repository's
`models` package (not vendored here); weights are the official initialisation (speed does
not depend on the values). The subnet is built the official way: the dynamic supernet,
set_active_subnet, then get_active_subnet() (a static model), eval(). One JSON line per
subnet, median seconds per batch over --seconds of timed batches after 3 warm-ups.
"""
import argparse
import json
import os
import statistics
import sys
import time
from types import SimpleNamespace

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

A0 = dict(resolution=128, width=[16, 16, 24, 32, 64, 112, 192, 216, 1792], depth=[1, 3, 3, 3, 3, 3, 1],
          kernel_size=[3, 3, 3, 3, 3, 3, 3], expand_ratio=[1, 4, 4, 4, 4, 6, 6])
A6 = dict(resolution=128, width=[16, 16, 24, 32, 64, 112, 216, 224, 1984], depth=[1, 3, 3, 4, 4, 6, 1],
          kernel_size=[3, 3, 3, 3, 3, 5, 3], expand_ratio=[1, 4, 6, 5, 4, 6, 6])


def namespace(value):
    if isinstance(value, dict):
        return SimpleNamespace(**{k: namespace(v) for k, v in value.items()})
    return value


def extreme(config, pick, resolution):
    """The max (pick=max) or min (pick=min) subnet of a supernet_config, at `resolution`."""
    stages = ["first_conv", "mb1", "mb2", "mb3", "mb4", "mb5", "mb6", "mb7", "last_conv"]
    return dict(resolution=resolution,
                width=[pick(config[s]["c"]) for s in stages],
                depth=[pick(config[s]["d"]) for s in stages[1:-1]],
                kernel_size=[pick(config[s]["k"]) for s in stages[1:-1]],
                expand_ratio=[pick(config[s]["t"]) for s in stages[1:-1]])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--official", required=True, help="checkout of facebookresearch/AttentiveNAS (or AlphaNet)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=4.0)
    args = parser.parse_args()
    if not os.path.isdir(os.path.join(args.official, "models")):
        sys.exit(f"bench-torch-infer: error: {args.official}: no models/ package (give a checkout of the official code)")
    sys.path.insert(0, args.official)
    import torch
    from models.attentive_nas_dynamic_model import AttentiveNasDynamicModel

    torch.set_num_threads(args.threads)
    print(json.dumps({"bench": "torch_version", "torch": torch.__version__, "threads": torch.get_num_threads()}), flush=True)

    def space(name):
        with open(os.path.join(ROOT, "pipelines", "spaces", name + ".json")) as f:
            return json.load(f)

    def throughput(space_name, arch, label, batch):
        s = space(space_name)
        supernet = AttentiveNasDynamicModel(namespace(s["supernet_config"]), n_classes=s["n_classes"],
                                            bn_param=(s["bn_momentum"], s["bn_eps"]))
        supernet.set_active_subnet(**arch)
        model = supernet.get_active_subnet()
        model.eval()
        r = arch["resolution"]
        x = torch.rand(batch, 3, r, r) * 2 - 1
        times = []
        with torch.no_grad():
            for _ in range(3):
                model(x)
            start = time.perf_counter()
            while time.perf_counter() - start < args.seconds or len(times) < 3:
                t0 = time.perf_counter()
                model(x)
                times.append(time.perf_counter() - t0)
        t = statistics.median(times)
        print(json.dumps({"bench": "torch_infer", "space": space_name, "subnet": label, "resolution": r, "batch": batch,
                          "images_per_s": round(batch / t, 2), "batches": len(times), "threads": args.threads}), flush=True)

    official = space("alphanet")["supernet_config"]
    tiny = space("tiny")["supernet_config"]
    throughput("alphanet", A0, "A0@128", 64)
    throughput("alphanet", A6, "A6@128", 64)
    throughput("alphanet", extreme(official, max, 128), "max@128", 64)
    throughput("tiny", extreme(tiny, max, 32), "max", 256)
    throughput("tiny", extreme(tiny, min, 32), "min@32", 256)


if __name__ == "__main__":
    main()
