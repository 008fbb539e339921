#!/usr/bin/env python3
"""Export a PyTorch state_dict to safetensors for `atrous run`.

Two sources:

    # a torchvision model, built here (random init unless --weights names pretrained ones)
    python scripts/export_safetensors.py deeplabv3_resnet50 out.safetensors

    # your own checkpoint: a state_dict saved with torch.save(model.state_dict(), "X.pt")
    python scripts/export_safetensors.py --input X.pt out.safetensors

Then run a head of it, selecting the sub-module by its key prefix:

    atrous run deeplab-head --weights out.safetensors --prefix classifier. \
        --input features.safetensors --output logits.safetensors

Checkpoints are read with torch.load(weights_only=True), which refuses arbitrary pickled
objects. A checkpoint that wraps its state_dict ({"state_dict": ...} or {"model": ...}) is
unwrapped; non-tensor entries are skipped with a note. Tensors are written as they are (dtype
and key names unchanged); tensors that share storage are copied apart, as safetensors requires.
"""

import argparse
import inspect
import sys

import torch
from safetensors.torch import save_file


def torchvision_state_dict(name, weights, num_classes):
    import torchvision.models as models

    try:
        builder = models.get_model_builder(name)
    except ValueError as e:
        sys.exit(f"error: {e}")
    params = inspect.signature(builder).parameters
    kwargs = {"weights": weights}
    # Segmentation builders download ImageNet backbone weights by default: not without asking.
    if "weights_backbone" in params:
        kwargs["weights_backbone"] = None
    if num_classes is not None:
        kwargs["num_classes"] = num_classes
    model = builder(**kwargs)
    return model.state_dict(), {"source": f"torchvision.models.{name}", "weights": str(weights)}


def checkpoint_state_dict(path):
    loaded = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(loaded, dict):
        sys.exit(f"error: {path} holds a {type(loaded).__name__}, not a state_dict")
    for wrapper in ("state_dict", "model", "model_state_dict"):
        if isinstance(loaded.get(wrapper), dict):
            print(f"note: using the '{wrapper}' entry of {path}")
            loaded = loaded[wrapper]
            break
    state = {}
    for key, value in loaded.items():
        if isinstance(value, torch.Tensor):
            state[key] = value
        else:
            print(f"note: skipping '{key}' ({type(value).__name__}, not a tensor)")
    if not state:
        sys.exit(f"error: {path} holds no tensors")
    return state, {"source": path}


def main():
    ap = argparse.ArgumentParser(
        description="Export a PyTorch state_dict to safetensors for `atrous run`.",
        usage="%(prog)s MODEL OUT.safetensors [--weights W] [--num-classes K]\n"
        "       %(prog)s --input CHECKPOINT.pt OUT.safetensors",
    )
    ap.add_argument("paths", nargs="+", metavar="MODEL OUT", help=argparse.SUPPRESS)
    ap.add_argument("--input", metavar="CHECKPOINT.pt",
                    help="a state_dict saved with torch.save (read with weights_only=True)")
    ap.add_argument("--weights", default=None,
                    help="torchvision weights to load, e.g. DEFAULT (downloads); default: none, "
                    "random init")
    ap.add_argument("--num-classes", type=int, default=None,
                    help="num_classes for the torchvision builder")
    args = ap.parse_args()

    if args.input is not None:
        if len(args.paths) != 1:
            ap.error("with --input give only the output path")
        (out,) = args.paths
        state, metadata = checkpoint_state_dict(args.input)
    else:
        if len(args.paths) != 2:
            ap.error("give a torchvision model name and an output path (or --input CHECKPOINT)")
        name, out = args.paths
        state, metadata = torchvision_state_dict(name, args.weights, args.num_classes)

    # safetensors refuses tensors that share memory and wants them contiguous.
    tensors = {key: value.detach().cpu().contiguous().clone() for key, value in state.items()}
    save_file(tensors, out, metadata={k: str(v) for k, v in metadata.items()})
    count = sum(t.numel() for t in tensors.values())
    print(f"wrote {out}: {len(tensors)} tensors, {count} values")
    prefixes = sorted({key.split(".")[0] for key in tensors})
    print(f"top-level modules: {', '.join(prefixes)}")


if __name__ == "__main__":
    main()
