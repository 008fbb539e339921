#!/usr/bin/env python3
"""Time PyTorch's F.conv2d on the convolutions of an ASPP head, the layers that
`atrous bench aspp-convs` times: the 1x1 branch, one dilated 3x3 per rate (padding = rate) and
the 1x1 projection of the concatenation (branches + pooling branch). Bias and ReLU are included
(atrous fuses both). Median, min and max of --runs runs after --warmup runs.

    /work/venv/bin/python scripts/torch_conv_layers.py --threads 2 [--json FILE]
"""

import argparse
import json
import statistics
import time

import torch
import torch.nn.functional as F


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--in-channels", type=int, default=512)
    parser.add_argument("--out-channels", type=int, default=256)
    parser.add_argument("--size", default="33,33")
    parser.add_argument("--rates", default="6,12,18")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=21)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    h, w = (int(s) for s in args.size.split(","))
    rates = [int(r) for r in args.rates.split(",")]
    cin, cout = args.in_channels, args.out_channels
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(1, cin, h, w, generator=gen)
    cat = torch.randn(1, cout * (len(rates) + 2), h, w, generator=gen)

    def conv(inp, k, dilation=1):
        weight = torch.randn(cout, inp.shape[1], k, k, generator=gen) / (inp.shape[1] * k * k) ** 0.5
        bias = torch.randn(cout, generator=gen)
        pad = dilation if k == 3 else 0
        return lambda: F.relu(F.conv2d(inp, weight, bias, padding=pad, dilation=dilation))

    layers = [("aspp 1x1", conv(x, 1))]
    layers += [(f"aspp rate {r}", conv(x, 3, r)) for r in rates]
    layers.append(("aspp project", conv(cat, 1)))
    results = []
    with torch.no_grad():
        for name, run in layers:
            for _ in range(args.warmup):
                run()
            samples = []
            for _ in range(args.runs):
                start = time.perf_counter()
                run()
                samples.append((time.perf_counter() - start) * 1e3)
            results.append({"layer": name, "median_ms": statistics.median(samples),
                            "min_ms": min(samples), "max_ms": max(samples)})
            print(f"{name:<14} {results[-1]['median_ms']:8.3f} ms (min {min(samples):.3f}, max {max(samples):.3f})")
    total = sum(r["median_ms"] for r in results)
    print(f"{'sum':<14} {total:8.3f} ms  (torch {torch.__version__}, {args.threads} threads)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"torch_version": torch.__version__, "threads": args.threads,
                       "layers": results, "sum_median_ms": total}, f, indent=2)


if __name__ == "__main__":
    main()
