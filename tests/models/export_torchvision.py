#!/usr/bin/python3
"""Export torchvision architectures with seeded random weights to ONNX, plus
seeded random float32 NPY inputs, for qdb's parity tests and benchmarks.

    /usr/bin/python3 tests/models/export_torchvision.py --out tests/out/models \
        [--models resnet18,mobilenet_v2,...] [--sizes 28,224] [--batches 2]

Needs Debian's python3-torch (1.13), python3-torchvision (0.14), python3-onnx,
python3-numpy: run it with /usr/bin/python3.

Writes, for each model M and size S (skipping files already there; all
cached files in OUT are removed first when this script's text changed, as
recorded in OUT/.stamp):
    OUT/M_S.onnx          S=28: input 1x1x28x28, S=224: input 1x3x224x224,
                          batch axis dynamic ("batch"), opset 13
    OUT/in_CxSxS_bB.npy   N(0,1) float32 input of batch B, seeded

How the models are made (deterministic: same script -> same files):
  * torch.manual_seed(hash of name) then the torchvision constructor with
    weights=None (its own random init).
  * 28x28 variants: the FIRST Conv2d (3 input channels) is replaced by one with
    1 input channel and otherwise the same kernel/stride/padding, so the
    network is unchanged except for that layer (MNIST-like input). This
    exports cleanly for every architecture here; no extra node is added.
  * BatchNorm parameters and statistics are random but plausible: weight
    (gamma) gets U(0.6, 1.4) and bias (beta) N(0, 0.1); then the running
    stats are accumulated (BN layers in train mode, all else in eval mode: no
    dropout or stochastic depth) over two seeded random batches
    (momentum=None: a plain average), and perturbed: running_var scaled by
    U(0.8, 1.25), running_mean shifted by N(0, 0.05*std). So no BN is
    identity and activations keep a sane scale through deep networks.
  * Export in eval mode with training=TrainingMode.PRESERVE and
    do_constant_folding=False: BatchNormalization nodes are kept (not fused
    into Conv), shape arithmetic (Shape/Gather/Concat/...) stays in the graph.
"""
import argparse
import hashlib
import os
import sys
import warnings

warnings.filterwarnings("ignore")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torchvision.models as tvm  # noqa: E402

# name -> constructor (random weights)
MODELS = {
    "resnet18": lambda: tvm.resnet18(weights=None),
    "mobilenet_v2": lambda: tvm.mobilenet_v2(weights=None),
    "shufflenet_v2": lambda: tvm.shufflenet_v2_x1_0(weights=None),
    "mobilenet_v3_small": lambda: tvm.mobilenet_v3_small(weights=None),
    "mnasnet1_0": lambda: tvm.mnasnet1_0(weights=None),
    "squeezenet1_1": lambda: tvm.squeezenet1_1(weights=None),
    "efficientnet_b0": lambda: tvm.efficientnet_b0(weights=None),
    "googlenet": lambda: tvm.googlenet(weights=None, aux_logits=False, init_weights=True),
}
SIZES = {28: (1, 28, 28), 224: (3, 224, 224)}
OPSET = 13


def seed_of(*parts):
    h = hashlib.sha256("/".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(h[:4], "little")


def replace_first_conv(model):
    """Replace the first Conv2d taking 3 channels by one taking 1 channel."""
    for name, mod in model.named_modules():
        if isinstance(mod, torch.nn.Conv2d) and mod.in_channels == 3:
            new = torch.nn.Conv2d(1, mod.out_channels, mod.kernel_size, mod.stride,
                                  mod.padding, mod.dilation, mod.groups,
                                  mod.bias is not None, mod.padding_mode)
            parent = model
            *path, last = name.split(".")
            for p in path:
                parent = getattr(parent, p)
            setattr(parent, last, new)
            return name
    raise RuntimeError("no Conv2d with 3 input channels")


def randomize_bn(model, chw, seed):
    g = torch.Generator().manual_seed(seed)
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return 0
    with torch.no_grad():
        for bn in bns:
            n = bn.num_features
            if bn.affine:
                bn.weight.copy_(0.6 + 0.8 * torch.rand(n, generator=g))
                bn.bias.copy_(0.1 * torch.randn(n, generator=g))
            bn.reset_running_stats()
            bn.momentum = None  # cumulative average
        model.eval()  # only BN in train mode: no dropout / stochastic depth here
        for bn in bns:
            bn.train()
        for _ in range(2):
            model(torch.randn((16 if chw[1] < 64 else 8,) + chw, generator=g))
        model.eval()
        for bn in bns:
            n = bn.num_features
            std = bn.running_var.clamp_min(1e-6).sqrt()
            bn.running_mean += 0.05 * std * torch.randn(n, generator=g)
            bn.running_var *= 0.8 + 0.45 * torch.rand(n, generator=g)
            bn.momentum = 0.1
    return len(bns)


def export(name, size, path):
    torch.manual_seed(seed_of(name, size))
    model = MODELS[name]()
    chw = SIZES[size]
    note = ""
    if chw[0] == 1:
        note = f"first conv '{replace_first_conv(model)}' now 1->C"
    nbn = randomize_bn(model, chw, seed_of("bn", name, size))
    model.eval()
    x = torch.randn((2,) + chw, generator=torch.Generator().manual_seed(seed_of("x", name, size)))
    tmp = path + ".tmp"
    with torch.no_grad():
        torch.onnx.export(
            model, x, tmp,
            export_params=True,
            opset_version=OPSET,
            do_constant_folding=False,
            training=torch.onnx.TrainingMode.PRESERVE,
            input_names=["input"],
            output_names=["output"],
            dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
        )
    os.replace(tmp, path)
    return f"{nbn} BN" + (", " + note if note else "")


def write_input(size, batch, path):
    rng = np.random.default_rng(seed_of("input", size, batch))
    x = rng.standard_normal((batch,) + SIZES[size], dtype=np.float32)
    tmp = path + ".tmp.npy"
    np.save(tmp, np.ascontiguousarray(x))
    os.replace(tmp, path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="tests/out/models")
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--sizes", default="28,224")
    ap.add_argument("--batches", default="2")
    ap.add_argument("--list", action="store_true", help="print model names and exit")
    a = ap.parse_args()
    if a.list:
        print(" ".join(MODELS))
        return 0
    names = [m for m in a.models.split(",") if m]
    sizes = [int(s) for s in a.sizes.split(",") if s]
    batches = [int(b) for b in a.batches.split(",") if b]
    for m in names:
        if m not in MODELS:
            print(f"export: unknown model '{m}' (have: {' '.join(MODELS)})", file=sys.stderr)
            return 2
    for s in sizes:
        if s not in SIZES:
            print(f"export: unknown size {s} (have: 28 224)", file=sys.stderr)
            return 2
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.abspath(__file__), "rb") as f:
        stamp = hashlib.sha256(f.read()).hexdigest()[:16]
    stamp_file = os.path.join(a.out, ".stamp")
    try:
        with open(stamp_file) as f:
            old = f.read().strip()
    except OSError:
        old = ""
    if old != stamp:
        gone = [e for e in os.listdir(a.out) if e.endswith((".onnx", ".npy", ".tmp"))]
        for e in gone:
            os.remove(os.path.join(a.out, e))
        with open(stamp_file, "w") as f:
            f.write(stamp + "\n")
        if gone:
            print(f"export: script changed: removed {len(gone)} cached files from {a.out}", flush=True)
    torch.set_num_threads(os.cpu_count() or 1)
    failed = 0
    for s in sizes:
        c, h, w = SIZES[s]
        for b in batches:
            p = os.path.join(a.out, f"in_{c}x{h}x{w}_b{b}.npy")
            if not os.path.exists(p):
                write_input(s, b, p)
                print(f"export: wrote {p}", flush=True)
    for m in names:
        for s in sizes:
            p = os.path.join(a.out, f"{m}_{s}.onnx")
            if os.path.exists(p):
                continue
            try:
                what = export(m, s, p)
                print(f"export: wrote {p} ({what})", flush=True)
            except Exception as e:  # report and go on with the others
                failed += 1
                print(f"export: FAILED {m}_{s}: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
