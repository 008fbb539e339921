#!/usr/bin/env python3
"""Generate golden single-op test fixtures for atrous: tests/fixtures/ops.safetensors.

What it makes
-------------
One safetensors file holding, for every test case, the random float32 inputs
and parameters of one op together with PyTorch's float32 output for it. The
ops covered are exactly the ones atrous implements for DeepLab-style models:

    conv2d               F.conv2d (any kernel, stride, dilation, padding; optional bias),
                         optionally + a residual tensor, optional F.relu (the engine's
                         epilogue: relu(conv(x) + b + r))
    conv_bn              F.conv2d followed by F.batch_norm(training=False), optional F.relu
    max_pool2d           F.max_pool2d (kernel, stride, padding; ceil_mode False)
    batchnorm            F.batch_norm(training=False), optional F.relu
    adaptive_avg_pool2d  F.adaptive_avg_pool2d
    interpolate          F.interpolate(mode="bilinear", align_corners=True/False)
    concat               torch.cat(dim=1)

Only PyTorch's own functions compute the expected outputs; nothing here
re-implements an op.

File layout (what the Rust test reads)
--------------------------------------
__metadata__ (string -> string):
    "format"        "atrous-op-fixtures"
    "version"       "2"     (2: stride, residual, max_pool2d)
    "torch_version" torch.__version__
    "cases"         JSON list of case names, in generation order
    "case.NAME"     JSON object with the parameters of case NAME, e.g.
                    {"op": "conv2d", "kernel_size": 3, "stride": 1, "dilation": 12,
                     "padding": [12, 12], "bias": true, "residual": false, "relu": true}
Tensors: "NAME.<role>", float32, contiguous, PyTorch (NCHW) shapes:
    conv2d               x, w, [b], [r], y
    conv_bn              x, w, [b], gamma, beta, mean, var, y
    max_pool2d           x, y
    batchnorm            x, gamma, beta, mean, var, y
    adaptive_avg_pool2d  x, y
    interpolate          x, y
    concat               x0 .. x{count-1}, y

The Rust tests only read the committed file; they never need Python.

Regenerating
------------
    python3 -m venv .venv && .venv/bin/pip install torch safetensors && \
        .venv/bin/python scripts/make_fixtures.py

Options: --out PATH (default tests/fixtures/ops.safetensors, relative to the
repository root). Every case seeds torch with a fixed per-case seed (CRC32 of
its name), torch runs single-threaded, and the file header is re-emitted with
sorted keys (safetensors itself writes the metadata map in hash order), so the
output is reproducible byte for byte for a given torch build and CPU type
(other CPUs / torch versions may differ in the last float32 bits, which is
well inside the tests' tolerances).
"""

import argparse
import json
import math
import os
import re
import struct
import zlib

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_OUT = os.path.join("tests", "fixtures", "ops.safetensors")

NAME_RE = re.compile(r"^[a-z0-9_]+$")


class Fixtures:
    def __init__(self):
        self.cases = []  # names, in generation order
        self.params = {}  # name -> params dict
        self.tensors = {}  # "NAME.role" -> tensor

    def begin(self, name):
        """Validate the name and seed torch for this case."""
        assert NAME_RE.match(name), f"bad case name {name!r}"
        assert name not in self.params, f"duplicate case name {name!r}"
        torch.manual_seed(zlib.crc32(name.encode("ascii")))

    def add(self, name, params, tensors):
        self.cases.append(name)
        self.params[name] = params
        for role, t in tensors.items():
            assert t.dtype == torch.float32, (name, role, t.dtype)
            assert torch.isfinite(t).all(), (name, role)
            self.tensors[f"{name}.{role}"] = t.detach().clone().contiguous()

    def metadata(self):
        md = {
            "format": "atrous-op-fixtures",
            "version": "2",
            "torch_version": torch.__version__,
            "cases": json.dumps(self.cases),
        }
        for name in self.cases:
            md[f"case.{name}"] = json.dumps(self.params[name], sort_keys=True)
        return md


# ---------------------------------------------------------------- helpers


def randn(*shape):
    return torch.randn(*shape, dtype=torch.float32)


def uniform(lo, hi, *shape):
    return torch.rand(*shape, dtype=torch.float32) * (hi - lo) + lo


def conv_weights(cin, cout, k, bias):
    fan_in = cin * k * k
    w = randn(cout, cin, k, k) / math.sqrt(fan_in)
    b = randn(cout) * 0.5 if bias else None
    return w, b


def bn_params(c):
    """Non-trivial inference-mode BN parameters so that folding is exercised."""
    gamma = uniform(0.5, 1.5, c)
    # Flip the sign of roughly a quarter of the channels (at least one).
    flip = torch.rand(c) < 0.25
    flip[0] = True
    gamma = torch.where(flip, -gamma, gamma)
    beta = randn(c)
    mean = randn(c)
    var = uniform(0.1, 2.0, c)
    return gamma, beta, mean, var


def pad_name(padding):
    ph, pw = padding
    return f"p{ph}" if ph == pw else f"p{ph}x{pw}"


# ---------------------------------------------------------------- case makers


def conv_case(fx, k, n, cin, cout, h, w, dilation, padding, bias, relu, stride=1, residual=False):
    if isinstance(padding, int):
        padding = (padding, padding)
    name = (
        f"conv{k}x{k}{f's{stride}' if stride > 1 else ''}_d{dilation}_{pad_name(padding)}"
        f"_h{h}w{w}_n{n}_c{cin}to{cout}{'_bias' if bias else ''}{'_res' if residual else ''}"
        f"{'_relu' if relu else ''}"
    )
    fx.begin(name)
    x = randn(n, cin, h, w)
    wt, b = conv_weights(cin, cout, k, bias)
    y = F.conv2d(x, wt, b, stride=stride, padding=padding, dilation=dilation)
    tensors = {"x": x, "w": wt}
    if residual:
        # ResNet's identity, added before the ReLU.
        r = randn(*y.shape)
        y = y + r
        tensors["r"] = r
    if relu:
        y = F.relu(y)
    tensors["y"] = y
    if bias:
        tensors["b"] = b
    params = {
        "op": "conv2d",
        "kernel_size": k,
        "stride": stride,
        "dilation": dilation,
        "padding": list(padding),
        "bias": bias,
        "residual": residual,
        "relu": relu,
    }
    fx.add(name, params, tensors)


def conv_bn_case(fx, k, n, cin, cout, h, w, dilation, padding, bias, eps, relu, stride=1):
    if isinstance(padding, int):
        padding = (padding, padding)
    eps_name = f"_eps{eps:.0e}".replace("-", "m").replace("+", "")
    name = (
        f"convbn{k}x{k}{f's{stride}' if stride > 1 else ''}_d{dilation}_{pad_name(padding)}"
        f"_h{h}w{w}_n{n}_c{cin}to{cout}{'_bias' if bias else ''}{eps_name}{'_relu' if relu else ''}"
    )
    fx.begin(name)
    x = randn(n, cin, h, w)
    wt, b = conv_weights(cin, cout, k, bias)
    gamma, beta, mean, var = bn_params(cout)
    z = F.conv2d(x, wt, b, stride=stride, padding=padding, dilation=dilation)
    y = F.batch_norm(z, mean, var, gamma, beta, training=False, eps=eps)
    if relu:
        y = F.relu(y)
    tensors = {"x": x, "w": wt, "gamma": gamma, "beta": beta, "mean": mean, "var": var, "y": y}
    if bias:
        tensors["b"] = b
    params = {
        "op": "conv_bn",
        "kernel_size": k,
        "stride": stride,
        "dilation": dilation,
        "padding": list(padding),
        "bias": bias,
        "eps": eps,
        "relu": relu,
    }
    fx.add(name, params, tensors)


def batchnorm_case(fx, n, c, h, w, eps, relu):
    eps_name = f"_eps{eps:.0e}".replace("-", "m").replace("+", "")
    name = f"batchnorm_h{h}w{w}_n{n}_c{c}{eps_name}{'_relu' if relu else ''}"
    fx.begin(name)
    x = randn(n, c, h, w)
    gamma, beta, mean, var = bn_params(c)
    y = F.batch_norm(x, mean, var, gamma, beta, training=False, eps=eps)
    if relu:
        y = F.relu(y)
    params = {"op": "batchnorm", "eps": eps, "relu": relu}
    fx.add(name, params, {"x": x, "gamma": gamma, "beta": beta, "mean": mean, "var": var, "y": y})


def pool_case(fx, n, c, h, w, oh, ow):
    name = f"avgpool_h{h}w{w}_to_h{oh}w{ow}_n{n}_c{c}"
    fx.begin(name)
    x = randn(n, c, h, w)
    y = F.adaptive_avg_pool2d(x, (oh, ow))
    params = {"op": "adaptive_avg_pool2d", "output_size": [oh, ow]}
    fx.add(name, params, {"x": x, "y": y})


def max_pool_case(fx, n, c, h, w, k, stride, padding, negative=False):
    name = f"maxpool{k}x{k}s{stride}_p{padding}_h{h}w{w}_n{n}_c{c}{'_neg' if negative else ''}"
    fx.begin(name)
    x = randn(n, c, h, w)
    if negative:
        # Every value below zero: a kernel that let zero padding win would show.
        x = -x.abs() - 0.5
    y = F.max_pool2d(x, k, stride=stride, padding=padding)
    params = {"op": "max_pool2d", "kernel_size": k, "stride": stride, "padding": padding}
    fx.add(name, params, {"x": x, "y": y})


def interp_case(fx, n, c, h, w, oh, ow, align_corners):
    name = f"interp_h{h}w{w}_to_h{oh}w{ow}_n{n}_c{c}_ac{int(align_corners)}"
    fx.begin(name)
    x = randn(n, c, h, w)
    y = F.interpolate(x, size=(oh, ow), mode="bilinear", align_corners=align_corners)
    params = {"op": "interpolate", "size": [oh, ow], "align_corners": align_corners}
    fx.add(name, params, {"x": x, "y": y})


def concat_case(fx, n, h, w, channels):
    name = f"concat{len(channels)}_h{h}w{w}_n{n}_c{'_'.join(str(c) for c in channels)}"
    fx.begin(name)
    xs = [randn(n, c, h, w) for c in channels]
    y = torch.cat(xs, dim=1)
    tensors = {f"x{i}": x for i, x in enumerate(xs)}
    tensors["y"] = y
    params = {"op": "concat", "count": len(channels)}
    fx.add(name, params, tensors)


# ---------------------------------------------------------------- the case list


def build():
    fx = Fixtures()

    # --- conv2d 3x3, padding = dilation (DeepLab's rule) --------------------
    #        n  cin cout  h   w   d  bias   relu
    for n, cin, cout, h, w, d, bias, relu in [
        (1, 16, 32, 1, 1, 1, True, False),
        (2, 32, 24, 1, 1, 12, True, True),     # rate >> map: only the centre tap is real
        (1, 8, 8, 3, 3, 1, False, False),
        (1, 16, 16, 3, 3, 36, True, False),
        (1, 8, 6, 5, 5, 2, True, True),
        (2, 6, 5, 5, 5, 6, False, True),       # rate > map
        (1, 4, 6, 7, 5, 1, True, True),        # H != W
        (2, 5, 7, 7, 5, 6, True, False),       # H != W, rate ~ map
        (1, 6, 4, 9, 7, 2, False, False),
        (2, 4, 6, 9, 7, 12, True, True),       # rate beyond the map
        (1, 8, 8, 13, 13, 1, True, False),
        (1, 6, 8, 13, 13, 6, False, True),
        (2, 4, 5, 13, 13, 12, True, True),
        (1, 4, 4, 13, 13, 24, True, False),    # rate beyond the map
        (1, 4, 4, 33, 33, 6, True, True),
        (2, 3, 4, 33, 33, 12, False, False),
        (1, 4, 3, 33, 33, 18, True, True),
        (1, 3, 4, 33, 33, 24, False, True),
        (1, 4, 4, 33, 33, 36, True, False),    # rate beyond the map
        (1, 3, 4, 65, 65, 1, True, True),
        (1, 2, 3, 65, 65, 6, False, False),
        (1, 3, 2, 65, 65, 18, True, True),
        (2, 2, 2, 65, 65, 36, True, False),
    ]:
        conv_case(fx, 3, n, cin, cout, h, w, d, d, bias, relu)

    # --- conv2d 3x3, padding != dilation ------------------------------------
    conv_case(fx, 3, 1, 4, 5, 9, 9, 2, 0, True, False)       # output 5x5
    conv_case(fx, 3, 2, 3, 4, 13, 11, 2, 0, False, True)     # output 9x7
    conv_case(fx, 3, 1, 4, 6, 7, 5, 1, (1, 3), True, True)   # asymmetric, output 7x9
    conv_case(fx, 3, 1, 5, 4, 9, 7, 2, (3, 1), False, False)  # asymmetric, output 9x5
    conv_case(fx, 3, 1, 6, 4, 5, 5, 1, 0, True, False)       # output 3x3
    conv_case(fx, 3, 2, 4, 4, 7, 9, 1, 0, False, True)       # output 5x7
    conv_case(fx, 3, 1, 4, 4, 13, 13, 6, 3, True, True)      # output 7x7

    # --- conv2d 1x1 ----------------------------------------------------------
    #        n  cin cout  h   w  bias   relu
    for n, cin, cout, h, w, bias, relu in [
        (1, 8, 8, 13, 13, True, False),
        (2, 3, 5, 7, 9, True, True),           # Cin, Cout not multiples of 4
        (1, 5, 6, 9, 7, False, True),
        (2, 32, 21, 1, 1, True, False),        # classifier-like, Cout = 21
        (1, 6, 2, 33, 33, False, False),
        (2, 7, 3, 5, 3, False, True),
        (1, 1, 4, 3, 5, True, False),          # Cin = 1
    ]:
        conv_case(fx, 1, n, cin, cout, h, w, 1, 0, bias, relu)

    # --- strided and other kernel sizes: what a ResNet adds ---------------------
    #        k  n  cin cout  h   w   d pad stride bias  relu
    for k, n, cin, cout, h, w, d, pad, stride, bias, relu in [
        (7, 2, 3, 8, 23, 18, 1, 3, 2, False, True),    # the stem, odd x even
        (7, 1, 3, 6, 24, 20, 1, 3, 2, True, False),    # the stem, even
        (3, 2, 6, 5, 17, 16, 1, 1, 2, False, True),    # 3x3 stride 2, odd x even
        (3, 1, 5, 7, 16, 16, 1, 1, 2, True, False),    # 3x3 stride 2, even
        (3, 2, 4, 6, 15, 13, 2, 2, 2, True, True),     # 3x3 stride 2, dilation 2
        (3, 1, 3, 4, 12, 14, 2, 2, 2, False, False),   # 3x3 stride 2, dilation 2, even
        (1, 2, 8, 12, 13, 11, 1, 0, 2, False, False),  # downsample 1x1 stride 2, odd
        (1, 1, 6, 10, 16, 12, 1, 0, 2, True, True),    # downsample 1x1 stride 2, even
        (5, 1, 4, 5, 11, 9, 1, 2, 1, True, True),      # another kernel size
        (3, 1, 4, 3, 9, 8, 1, 1, 3, True, False),      # stride 3
    ]:
        conv_case(fx, k, n, cin, cout, h, w, d, pad, bias, relu, stride=stride)

    # --- the epilogue's residual (ResNet's identity) ---------------------------
    conv_case(fx, 1, 2, 8, 12, 9, 7, 1, 0, False, True, residual=True)
    conv_case(fx, 3, 1, 5, 6, 11, 10, 2, 2, True, True, residual=True)
    conv_case(fx, 3, 2, 4, 5, 9, 9, 1, 1, True, False, residual=True)
    conv_case(fx, 1, 1, 6, 4, 12, 10, 1, 0, True, True, stride=2, residual=True)

    # --- conv_bn -------------------------------------------------------------
    #              k  n  cin cout  h   w   d  pad bias  eps   relu
    for k, n, cin, cout, h, w, d, pad, bias, eps, relu in [
        (3, 1, 6, 8, 13, 13, 6, 6, False, 1e-5, True),
        (3, 2, 4, 6, 9, 7, 12, 12, True, 1e-5, True),
        (3, 1, 4, 4, 33, 33, 1, 1, False, 1e-5, False),
        (3, 1, 5, 6, 5, 5, 2, 2, True, 1e-3, False),
        (3, 1, 4, 4, 13, 13, 24, 24, False, 1e-5, True),
        (3, 2, 3, 5, 7, 5, 18, 18, True, 1e-3, True),
        (1, 1, 8, 8, 13, 13, 1, 0, False, 1e-5, True),
        (1, 2, 5, 7, 7, 5, 1, 0, True, 1e-5, False),
        (1, 1, 32, 16, 1, 1, 1, 0, False, 1e-5, True),     # ASPP image-pool branch
        (1, 1, 3, 6, 9, 7, 1, 0, True, 1e-3, True),
    ]:
        conv_bn_case(fx, k, n, cin, cout, h, w, d, pad, bias, eps, relu)
    conv_bn_case(fx, 7, 1, 3, 8, 21, 19, 1, 3, False, 1e-5, True, stride=2)   # ResNet stem
    conv_bn_case(fx, 1, 2, 8, 16, 10, 9, 1, 0, False, 1e-5, False, stride=2)  # downsample

    # --- max_pool2d ------------------------------------------------------------
    #                 n  c   h   w  k  s  p  negative
    for n, c, h, w, k, stride, pad, negative in [
        (2, 3, 24, 18, 3, 2, 1, False),  # ResNet's stem pool, even
        (1, 4, 23, 17, 3, 2, 1, False),  # odd
        (2, 2, 9, 8, 3, 2, 1, True),     # all negative: padding must never win
        (1, 3, 1, 1, 3, 2, 1, True),     # 1x1: every window mostly padding
        (1, 2, 10, 7, 2, 2, 0, False),
        (2, 3, 8, 11, 3, 1, 1, True),
        (1, 2, 13, 12, 5, 3, 2, False),
    ]:
        max_pool_case(fx, n, c, h, w, k, stride, pad, negative)

    # --- batchnorm -----------------------------------------------------------
    batchnorm_case(fx, 2, 4, 9, 7, 1e-5, True)
    batchnorm_case(fx, 2, 3, 5, 5, 1e-5, False)
    batchnorm_case(fx, 1, 8, 13, 13, 1e-3, True)
    batchnorm_case(fx, 1, 16, 1, 1, 1e-5, False)
    batchnorm_case(fx, 2, 5, 3, 7, 1e-3, False)

    # --- adaptive_avg_pool2d -------------------------------------------------
    pool_case(fx, 1, 4, 12, 12, 6, 6)          # divisible
    for b in (1, 2, 3, 6):
        pool_case(fx, 1, 2, 60, 60, b, b)      # divisible (PSP bins)
    for b in (1, 2, 3, 6):
        pool_case(fx, 1, 3, 33, 33, b, b)      # non-divisible (PSP bins)
    pool_case(fx, 1, 4, 7, 5, 3, 2)            # non-divisible, H != W
    pool_case(fx, 2, 3, 10, 10, 3, 3)          # non-divisible, N = 2
    pool_case(fx, 1, 3, 2, 3, 5, 7)            # output larger than input
    pool_case(fx, 1, 4, 3, 3, 6, 6)            # output larger than input
    pool_case(fx, 2, 8, 13, 13, 1, 1)          # global pool, N = 2
    pool_case(fx, 2, 4, 9, 7, 1, 1)            # global pool, H != W
    pool_case(fx, 1, 16, 1, 1, 1, 1)           # 1x1 -> 1x1
    pool_case(fx, 1, 4, 1, 1, 3, 3)            # 1x1 -> 3x3 (broadcast)
    pool_case(fx, 2, 3, 13, 11, 5, 7)          # non-divisible both axes

    # --- interpolate (bilinear) ----------------------------------------------
    for n, c, h, w, oh, ow in [
        (1, 4, 1, 1, 33, 33),      # from 1x1
        (2, 3, 1, 1, 7, 5),        # from 1x1, N = 2
        (1, 3, 6, 6, 33, 33),      # non-integer factor
        (1, 2, 3, 3, 60, 60),      # non-integer factor
        (2, 3, 5, 7, 13, 11),      # non-integer factor, N = 2
        (1, 2, 17, 17, 65, 65),    # DeepLab-style 4x-ish upsample
        (1, 4, 33, 33, 9, 9),      # downsample
        (2, 3, 13, 11, 5, 7),      # downsample, N = 2
        (1, 4, 9, 7, 9, 7),        # same size
        (1, 4, 5, 5, 1, 1),        # to 1x1
        (2, 3, 2, 3, 1, 1),        # to 1x1, N = 2
        (1, 3, 1, 4, 3, 1),        # degenerate axes
    ]:
        for ac in (False, True):
            interp_case(fx, n, c, h, w, oh, ow, ac)

    # --- concat ----------------------------------------------------------------
    concat_case(fx, 1, 5, 5, [1, 3])
    concat_case(fx, 2, 7, 5, [7, 4])
    concat_case(fx, 1, 9, 7, [4, 7, 1])
    concat_case(fx, 2, 3, 3, [4, 7, 1])
    concat_case(fx, 1, 13, 13, [3, 1, 4, 7, 4])
    concat_case(fx, 2, 5, 7, [4, 4, 4, 4, 4])
    concat_case(fx, 2, 1, 1, [7, 3, 1, 4, 1])

    return fx


def build_random(count, seed):
    """`count` cases of random shapes and parameters drawn from `seed`: an independent check of
    the engine against PyTorch beyond the fixed edge cases (run it with
    `ATROUS_OP_FIXTURES=FILE cargo test --release --test golden_ops`)."""
    import random

    rng = random.Random(seed)
    fx = Fixtures()

    def dilated():
        d = rng.choice([1, 2, 3, 4, 6, 12, 18, 24, 36])
        if rng.random() < 0.7:
            return d, (d, d)  # DeepLab's padding = dilation
        # Any padding that still leaves an output: h + 2p - 2d >= 1.
        need = lambda size: max(0, -(-(2 * d - size + 1) // 2))
        return d, (need(h) + rng.randint(0, 2), need(w) + rng.randint(0, 2))

    kinds = ["conv3x3", "conv3x3", "conv1x1", "conv_bn", "batchnorm", "pool", "interpolate", "concat",
             "strided", "max_pool"]
    for i in range(count):
        n, c = rng.randint(1, 3), rng.randint(1, 12)
        h, w = rng.randint(1, 40), rng.randint(1, 40)
        relu, bias = rng.random() < 0.5, rng.random() < 0.5
        kind = kinds[i % len(kinds)]
        if kind == "conv3x3":
            d, pad = dilated()
            make = lambda: conv_case(fx, 3, n, c, rng.randint(1, 12), h, w, d, pad, bias, relu)
        elif kind == "conv1x1":
            make = lambda: conv_case(fx, 1, n, rng.randint(1, 40), rng.randint(1, 24), h, w, 1, 0, bias, relu)
        elif kind == "conv_bn":
            k = rng.choice([1, 3])
            d, pad = dilated() if k == 3 else (1, (0, 0))
            make = lambda: conv_bn_case(fx, k, n, c, rng.randint(1, 12), h, w, d, pad, bias, 1e-5, relu)
        elif kind == "batchnorm":
            make = lambda: batchnorm_case(fx, n, c, h, w, 1e-5, relu)
        elif kind == "pool":
            make = lambda: pool_case(fx, n, c, h, w, rng.randint(1, 12), rng.randint(1, 12))
        elif kind == "interpolate":
            make = lambda: interp_case(fx, n, c, h, w, rng.randint(1, 70), rng.randint(1, 70), rng.random() < 0.5)
        elif kind == "strided":
            k, stride = rng.choice([1, 3, 5, 7]), rng.randint(1, 3)
            d = rng.randint(1, 3) if k > 1 else 1
            span = d * (k - 1) + 1
            least = max(0, -(-(span - min(h, w)) // 2))
            pad = rng.randint(least, max(least, d * (k - 1) // 2 + 1))
            make = lambda: conv_case(fx, k, n, c, rng.randint(1, 12), h, w, d, pad, bias, relu,
                                     stride=stride, residual=rng.random() < 0.3)
        elif kind == "max_pool":
            k = rng.randint(1, 5)
            pad, stride = rng.randint(0, k // 2), rng.randint(1, 3)
            make = lambda: max_pool_case(fx, n, c, max(h, k), max(w, k), k, stride, pad,
                                         rng.random() < 0.3)
        else:
            make = lambda: concat_case(fx, n, h, w, [rng.randint(1, 8) for _ in range(rng.randint(1, 5))])
        try:
            make()
        except AssertionError as e:
            # Names describe the case, so two identical random draws collide: keep the first.
            if "duplicate case name" not in str(e):
                raise
    return fx


def canonicalize_header(path):
    """Rewrite the safetensors JSON header with sorted keys.

    safetensors serialises ``__metadata__`` from a hash map, so its key order
    (and hence the file's bytes) changes from run to run. The header is plain
    JSON followed by the raw data, whose offsets are relative to the end of the
    header, so re-emitting the header with sorted keys (space-padded to a
    multiple of 8 bytes, as safetensors does) leaves the data untouched and
    makes the file byte-for-byte reproducible.
    """
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8 : 8 + n])
    data = blob[8 + n :]
    text = json.dumps(header, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        f.write(data)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=None, help=f"output path (default {DEFAULT_OUT} in the repo)")
    ap.add_argument("--random", type=int, metavar="COUNT", default=None,
                    help="instead of the fixed edge cases, COUNT cases of random shapes (not committed; "
                         "run with ATROUS_OP_FIXTURES=FILE cargo test --release --test golden_ops)")
    ap.add_argument("--seed", type=int, default=0, help="seed for --random")
    args = ap.parse_args()
    if args.random is not None and args.out is None:
        ap.error("--random needs --out (the committed fixture holds the fixed edge cases)")
    out = args.out if args.out is not None else os.path.join(REPO_ROOT, DEFAULT_OUT)

    # Float32 CPU convolution picks its blocking / accumulation order by
    # thread count, which changes the last bits of the outputs; pin it so the
    # file does not depend on the machine's core count.
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    fx = build() if args.random is None else build_random(args.random, args.seed)

    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    save_file(fx.tensors, out, metadata=fx.metadata())
    canonicalize_header(out)

    counts = {}
    for name in fx.cases:
        op = fx.params[name]["op"]
        counts[op] = counts.get(op, 0) + 1
    size = os.path.getsize(out)
    print(f"wrote {out}")
    print(f"  cases: {len(fx.cases)} ({', '.join(f'{k} {v}' for k, v in counts.items())})")
    print(f"  tensors: {len(fx.tensors)}")
    print(f"  size: {size} bytes ({size / 1024:.1f} KiB)")
    print(f"  torch: {torch.__version__}")


if __name__ == "__main__":
    main()
