#!/usr/bin/env python3
"""Convert an official AlphaNet / AttentiveNAS PyTorch checkpoint to our checkpoint file.

    Scripts/import-torch-checkpoint.py alphanet_a0.pth.tar supernet.safetensors.lz4 \
        --space pipelines/spaces/alphanet.json

Reads the state_dict (at the top level, or under 'state_dict' or 'model'), drops a
'module.' prefix (DataParallel), and writes safetensors: F32 for floating tensors,
I64 for integer ones (num_batches_tracked), with metadata
{"format": "alphanet-checkpoint", "version": "1", "space": <--space file text>}.
Tensor names and shapes stay those of the official state_dict, which is what our
checkpoint loader expects. An output name ending in .lz4 is compressed with the
`lz4` command; otherwise plain .safetensors is written (our readers accept both).

Needs torch only to read .pth.tar files (numpy is not needed); torch.load runs with
weights_only=True, so a checkpoint that also pickles Python objects (the official
training code saves its config next to the weights) is refused unless --trust-pickle
says its source is trusted. The conversion core (`convert`) takes torch tensors, or
anything with .numpy()/.tolist(), or nested lists. `--selftest` reads INPUT as JSON (a stand-in for torch.load: the same
structure with nested lists for tensors), so the conversion is tested without torch.
"""
import argparse
import json
import os
import pickle
import re
import struct
import subprocess
import sys
import tempfile

FORMAT = "alphanet-checkpoint"
VERSION = "1"


def _torch_tensor_bytes(value):
    """(shape, dtype, bytes) of a torch tensor without numpy: float -> F32, integer/bool -> I64."""
    import torch
    t = value.detach().cpu()
    if t.is_floating_point():
        t, dtype = t.to(torch.float32), "F32"
    elif t.is_complex():
        raise ValueError("complex tensor")
    else:
        t, dtype = t.to(torch.int64), "I64"
    t = t.contiguous().clone()  # its own storage, exactly numel elements, no offset
    data = bytes(t.untyped_storage()) if t.numel() else b""
    if sys.byteorder != "little":
        raise ValueError("big-endian host: safetensors is little-endian")
    return list(t.shape), dtype, data


def _is_torch_tensor(value):
    return type(value).__module__.startswith("torch") and hasattr(value, "untyped_storage")


def _flatten(value):
    """(shape, flat list, is_float) of a tensor-like value: .numpy()/.tolist() objects or nested lists."""
    if hasattr(value, "detach"):
        value = value.detach().cpu()
    if hasattr(value, "numpy"):
        value = value.numpy()
    if hasattr(value, "tolist") and not isinstance(value, list):
        value = value.tolist()
    shape = []
    probe = value
    while isinstance(probe, (list, tuple)):
        shape.append(len(probe))
        probe = probe[0] if probe else 0
    flat = []

    def walk(v, depth):
        if depth == len(shape):
            flat.append(v)
            return
        if not isinstance(v, (list, tuple)) or len(v) != shape[depth]:
            raise ValueError("ragged tensor")
        for x in v:
            walk(x, depth + 1)

    walk(value, 0)
    is_float = any(isinstance(x, float) for x in flat)
    if not all(isinstance(x, (int, float, bool)) for x in flat):
        raise ValueError("non-numeric tensor")
    return shape, flat, is_float


def state_dict_of(checkpoint):
    """The state_dict inside a loaded checkpoint object."""
    for key in ("state_dict", "model"):
        if isinstance(checkpoint, dict) and key in checkpoint and isinstance(checkpoint[key], dict):
            return checkpoint[key]
    return checkpoint


def convert(state_dict, space_text=None):
    """Safetensors bytes for a mapping name -> tensor-like; 'module.' prefixes dropped."""
    entries = []
    for name, value in state_dict.items():
        if name.startswith("module."):
            name = name[len("module."):]
        try:
            if _is_torch_tensor(value):
                shape, dtype, data = _torch_tensor_bytes(value)
            else:
                shape, flat, is_float = _flatten(value)
                if is_float:
                    data = struct.pack(f"<{len(flat)}f", *flat)
                    dtype = "F32"
                else:
                    data = struct.pack(f"<{len(flat)}q", *[int(x) for x in flat])
                    dtype = "I64"
        except ValueError as e:
            raise ValueError(f"tensor {name}: {e}") from None
        entries.append((name, dtype, shape, data))
    metadata = {"format": FORMAT, "version": VERSION}
    if space_text is not None:
        metadata["space"] = space_text
    header = {"__metadata__": metadata}
    offset = 0
    for name, dtype, shape, data in entries:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(e[3] for e in entries)


def write_output(data, path):
    """Writes atomically; compresses with the lz4 command when the name ends in .lz4."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".import-", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        if path.endswith(".lz4"):
            packed = tmp + ".lz4"
            subprocess.run(["lz4", "-q", "-f", tmp, packed], check=True)
            os.replace(packed, path)
            os.unlink(tmp)
        else:
            os.replace(tmp, path)
    except BaseException:
        for p in (tmp, tmp + ".lz4"):
            if os.path.exists(p):
                os.unlink(p)
        raise


def main(argv):
    parser = argparse.ArgumentParser(description="Convert an official AlphaNet/AttentiveNAS .pth.tar to an alphanet-checkpoint.")
    parser.add_argument("input", nargs="?", help="PyTorch checkpoint (.pth.tar), or with --selftest a JSON file {name: nested list}")
    parser.add_argument("output", nargs="?", help="output .safetensors or .safetensors.lz4")
    parser.add_argument("--space", help="search space JSON to store in the checkpoint")
    parser.add_argument("--trust-pickle", action="store_true",
                        help="let torch.load unpickle Python objects besides tensors (runs code from the file: "
                             "only for checkpoints from a trusted source, such as the official release)")
    parser.add_argument("--selftest", action="store_true",
                        help="read INPUT as JSON {name: nested list} (a stand-in for torch.load) and convert it")
    args = parser.parse_args(argv)
    prog = "import-torch-checkpoint"
    if not args.input or not args.output:
        parser.error("give INPUT and OUTPUT")
    space_text = None
    if args.space:
        try:
            with open(args.space) as f:
                space_text = f.read()
            json.loads(space_text)
        except (OSError, ValueError) as e:
            print(f"{prog}: error: {args.space}: {e}", file=sys.stderr)
            return 65 if isinstance(e, ValueError) else 1
    try:
        if args.selftest:
            with open(args.input) as f:
                checkpoint = json.load(f)
        else:
            import torch  # only needed for real checkpoints
            try:
                checkpoint = torch.load(args.input, map_location="cpu", weights_only=not args.trust_pickle)
            except pickle.UnpicklingError as e:
                if args.trust_pickle:
                    raise
                found = re.search(r"GLOBAL ([\w.]+)", str(e))
                detail = f" (first: {found.group(1)})" if found else ""
                print(f"{prog}: error: {args.input}: holds pickled Python objects besides tensors{detail}; "
                      "if you trust its source, re-run with --trust-pickle", file=sys.stderr)
                return 65
    except ImportError:
        print(f"{prog}: error: reading .pth.tar files needs torch (pip install torch)", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"{prog}: error: {args.input}: {e.strerror or e}", file=sys.stderr)
        return 1
    except Exception as e:  # a file torch or json cannot read
        print(f"{prog}: error: {args.input}: cannot read checkpoint: {e}", file=sys.stderr)
        return 65
    state = state_dict_of(checkpoint)
    if not isinstance(state, dict) or not state:
        print(f"{prog}: error: {args.input}: no state_dict found", file=sys.stderr)
        return 65
    try:
        data = convert(state, space_text)
    except ValueError as e:
        print(f"{prog}: error: {args.input}: {e}", file=sys.stderr)
        return 65
    try:
        write_output(data, args.output)
    except (OSError, subprocess.CalledProcessError) as e:
        print(f"{prog}: error: {args.output}: {e}", file=sys.stderr)
        return 1
    print(f"{prog}: wrote {len(state)} tensors to {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
