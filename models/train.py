"""Train qdb's bundled Fashion-MNIST models and export them to ONNX.

Run with Debian's Python (PyTorch 1.13, torchvision 0.14, onnx 1.12):

    /usr/bin/python3 models/train.py --arch lenet [--epochs N] [--threads T]

Architectures: lenet (small, for fast tests), resnet18, mobilenet_v2,
shufflenet_v2 (torchvision's, 10 classes, with a 1x1 "shim" convolution from
1 to 3 channels in front). Every model takes raw pixels in [0, 1], shape
N x 1 x 28 x 28, and normalizes inside the graph. The export keeps
BatchNormalization nodes (opset 13, no constant folding) because qdb folds
batch norms itself and CLE / bias correction need their statistics.

Writes models/<arch>.onnx and models/<arch>.json (recipe, parameter count,
training time, FP32 test accuracy measured by PyTorch).
"""
import argparse
import gzip
import json
import os
import struct
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

DATA = "/usr/share/datasets/fashion-mnist"
MEAN, STD = 0.2860, 0.3530  # Fashion-MNIST training-set pixel statistics
HERE = os.path.dirname(os.path.abspath(__file__))


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    magic, = struct.unpack(">I", data[:4])
    ndim = magic & 0xFF
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load_split(split):
    prefix = "train" if split == "train" else "t10k"
    x = read_idx(f"{DATA}/{prefix}-images-idx3-ubyte.gz").astype(np.float32) / 255.0
    y = read_idx(f"{DATA}/{prefix}-labels-idx1-ubyte.gz").astype(np.int64)
    return torch.from_numpy(x).unsqueeze(1), torch.from_numpy(y)


class Normalize(nn.Module):
    """(x - mean) / std inside the graph, so models take raw [0, 1] pixels."""

    def __init__(self):
        super().__init__()
        self.register_buffer("mean", torch.tensor(MEAN).view(1, 1, 1, 1))
        self.register_buffer("std", torch.tensor(STD).view(1, 1, 1, 1))

    def forward(self, x):
        return (x - self.mean) / self.std


class LeNet(nn.Module):
    """LeNet-5 style, with batch norms: small and fast, for tests."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 5, padding=2)
        self.bn1 = nn.BatchNorm2d(16)
        self.conv2 = nn.Conv2d(16, 32, 5)
        self.bn2 = nn.BatchNorm2d(32)
        self.fc1 = nn.Linear(32 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 2)
        x = F.max_pool2d(F.relu(self.bn2(self.conv2(x))), 2)
        x = torch.flatten(x, 1)
        return self.fc3(F.relu(self.fc2(F.relu(self.fc1(x)))))


def build(arch):
    if arch == "lenet":
        body = LeNet()
        return nn.Sequential(Normalize(), body)
    tv = torchvision.models
    body = {"resnet18": tv.resnet18, "mobilenet_v2": tv.mobilenet_v2,
            "shufflenet_v2": tv.shufflenet_v2_x1_0}[arch](num_classes=10)
    shim = nn.Conv2d(1, 3, 1)  # the report's 1x1 convolution from 1 to 3 channels
    return nn.Sequential(Normalize(), shim, body)


def evaluate(model, x, y, batch=500):
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(x), batch):
            correct += (model(x[i:i + batch]).argmax(1) == y[i:i + batch]).sum().item()
    return correct / len(x)


def augment(xb):
    """Random crop with 2 pixels of zero padding and random horizontal flip."""
    n = xb.shape[0]
    padded = F.pad(xb, (2, 2, 2, 2))
    dx, dy = np.random.randint(0, 5, 2)
    xb = padded[:, :, dy:dy + 28, dx:dx + 28]
    flip = torch.rand(n) < 0.5
    xb[flip] = xb[flip].flip(3)
    return xb


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", required=True, choices=["lenet", "resnet18", "mobilenet_v2", "shufflenet_v2"])
    ap.add_argument("--epochs", type=int, default=None, help="default: 8 (lenet 6)")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", default=HERE)
    args = ap.parse_args()
    epochs = args.epochs or (6 if args.arch == "lenet" else 8)
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    torch.set_num_threads(args.threads)

    xtr, ytr = load_split("train")
    xte, yte = load_split("test")
    model = build(args.arch)
    params = sum(p.numel() for p in model.parameters())
    steps = epochs * ((len(xtr) + args.batch - 1) // args.batch)
    opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, weight_decay=5e-4, nesterov=True)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=steps, pct_start=0.15)
    t0 = time.time()
    for ep in range(epochs):
        model.train()
        perm = torch.randperm(len(xtr))
        total = 0.0
        for i in range(0, len(xtr), args.batch):
            idx = perm[i:i + args.batch]
            xb, yb = augment(xtr[idx].clone()), ytr[idx]
            loss = F.cross_entropy(model(xb), yb, label_smoothing=0.05)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        acc = evaluate(model, xte, yte)
        print(f"{args.arch} epoch {ep + 1}/{epochs}: loss {total / len(xtr):.4f} test acc {acc:.4f} "
              f"({time.time() - t0:.0f}s)", flush=True)
    train_s = time.time() - t0
    acc = evaluate(model, xte, yte)

    model.eval()
    path = os.path.join(args.out, f"{args.arch}.onnx")
    torch.onnx.export(model, torch.zeros(1, 1, 28, 28), path, opset_version=13,
                      do_constant_folding=False, training=torch.onnx.TrainingMode.PRESERVE,
                      input_names=["image"], output_names=["logits"],
                      dynamic_axes={"image": {0: "N"}, "logits": {0: "N"}})
    info = {"arch": args.arch, "params": params, "epochs": epochs, "batch": args.batch,
            "optimizer": f"SGD nesterov momentum 0.9, weight decay 5e-4, one-cycle lr max {args.lr}",
            "loss": "cross entropy, label smoothing 0.05",
            "augmentation": "random crop (pad 2), horizontal flip",
            "threads": args.threads, "seed": args.seed, "train_seconds": round(train_s),
            "torch": torch.__version__, "pytorch_test_accuracy": acc}
    with open(os.path.join(args.out, f"{args.arch}.json"), "w") as f:
        json.dump(info, f, indent=2)
        f.write("\n")
    print(json.dumps(info))


if __name__ == "__main__":
    main()
