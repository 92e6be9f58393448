"""Writes tests/data/bn_forward.onnx: batch norms qd_graph_fuse folds that are
not after a Conv. Run with Debian's /usr/bin/python3 (onnx, numpy).

  x -> BN p -> Conv (no padding)            -> y1   BN folded forward into the Conv
  x -> BN q -> Conv (padding 1)             -> y2   left alone: padded zeros would not be shifted
  x -> BN r -> Conv depthwise-ish (group 3) -> y3   folded forward, per group
  x -> Flatten -> Gemm (transB=1) -> BN s   -> y4   folded back into the Gemm
  x -> Flatten -> BN t -> Gemm (transB=0)   -> y5   folded forward into the Gemm
"""
import numpy as np
import onnx
from onnx import helper, numpy_helper, TensorProto

rng = np.random.default_rng(11)
C, H, W = 3, 6, 5
inits, nodes = [], []


def const(name, arr):
    inits.append(numpy_helper.from_array(np.asarray(arr, dtype=np.float32), name))
    return name


def bn(tag, x, c):
    ins = [x] + [const(f"{tag}_{p}", v) for p, v in (
        ("g", rng.uniform(0.5, 2, c)), ("be", rng.normal(0, 1, c)),
        ("m", rng.normal(0, 1, c)), ("v", rng.uniform(0.2, 3, c)))]
    nodes.append(helper.make_node("BatchNormalization", ins, [f"{tag}_bn"], name=f"{tag}_bnorm", epsilon=1e-3))
    return f"{tag}_bn"


def conv(tag, x, k, group=1, pad=0, bias=True):
    ins = [x, const(f"{tag}_w", rng.normal(0, 0.5, (k, C // group, 3, 3)))]
    if bias:
        ins.append(const(f"{tag}_b", rng.normal(0, 0.5, k)))
    nodes.append(helper.make_node("Conv", ins, [f"{tag}_out"], name=f"{tag}_conv", group=group, pads=[pad] * 4))
    return f"{tag}_out"


y1 = conv("p", bn("p", "x", C), 4)
y2 = conv("q", bn("q", "x", C), 4, pad=1)
y3 = conv("r", bn("r", "x", C), 6, group=3, bias=False)
nodes.append(helper.make_node("Flatten", ["x"], ["flat"], name="flatten"))
F = C * H * W
nodes.append(helper.make_node("Gemm", ["flat", const("s_w", rng.normal(0, 0.2, (7, F))), const("s_b", rng.normal(0, 1, 7))],
                              ["s_mm"], name="s_gemm", transB=1))
y4 = bn("s", "s_mm", 7)
nodes.append(helper.make_node("Gemm", [bn("t", "flat", F), const("t_w", rng.normal(0, 0.2, (F, 5)))], ["t_out"],
                              name="t_gemm"))
outs = [(y1, [None, 4, H - 2, W - 2]), (y2, [None, 4, H, W]), (y3, [None, 6, H - 2, W - 2]), (y4, [None, 7]),
        ("t_out", [None, 5])]
graph = helper.make_graph(
    nodes, "bn_forward", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", C, H, W])],
    [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["N"] + s[1:]) for n, s in outs], inits)
model = helper.make_model(graph, producer_name="qdb-tests", opset_imports=[helper.make_opsetid("", 13)])
model.ir_version = 7
onnx.checker.check_model(model)
onnx.save(model, "tests/data/bn_forward.onnx")
np.save("tests/data/bn_forward_in.npy", rng.normal(0, 1, (2, C, H, W)).astype(np.float32))
