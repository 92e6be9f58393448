"""Writes tests/data/fuse.onnx: the Conv patterns qd_graph_fuse rewrites, and
ones it must leave alone. Run with Debian's /usr/bin/python3 (onnx, numpy).

  x -> Conv a (bias)    -> BN -> Relu            fold + fuse
    -> Conv b (no bias) -> BN -> Clip(0, 6)      fold (new bias) + fuse
    -> Conv c           -> Relu, and c's output also read by Add   untouched
    -> Conv d           -> BN (graph output d_bn) -> Relu    fold only (d_bn has two readers)
  concat(a, b, c_relu + c, d) -> output "y"; "d_bn" is a second graph output
"""
import numpy as np
import onnx
from onnx import helper, numpy_helper, TensorProto

rng = np.random.default_rng(7)
C, K = 3, 4


def const(name, arr):
    return numpy_helper.from_array(np.asarray(arr, dtype=np.float32), name)


inits, nodes = [], []


def conv(tag, bias=True):
    inits.append(const(f"{tag}_w", rng.normal(0, 0.5, (K, C, 3, 3))))
    ins = ["x", f"{tag}_w"]
    if bias:
        inits.append(const(f"{tag}_b", rng.normal(0, 0.5, K)))
        ins.append(f"{tag}_b")
    nodes.append(helper.make_node("Conv", ins, [f"{tag}_c"], name=f"{tag}_conv", pads=[1, 1, 1, 1]))
    return f"{tag}_c"


def bn(tag, x, out=None):
    for p, v in (("g", rng.uniform(0.5, 2, K)), ("be", rng.normal(0, 1, K)),
                 ("m", rng.normal(0, 1, K)), ("v", rng.uniform(0.2, 3, K))):
        inits.append(const(f"{tag}_{p}", v))
    out = out or f"{tag}_bn"
    nodes.append(helper.make_node("BatchNormalization", [x, f"{tag}_g", f"{tag}_be", f"{tag}_m", f"{tag}_v"],
                                  [out], name=f"{tag}_bnorm", epsilon=1e-3))
    return out


a = bn("a", conv("a"))
nodes.append(helper.make_node("Relu", [a], ["a_r"], name="a_relu"))
b = bn("b", conv("b", bias=False))
inits += [const("lo", 0.0), const("hi", 6.0)]
nodes.append(helper.make_node("Clip", [b, "lo", "hi"], ["b_r"], name="b_clip"))
c = conv("c")
nodes.append(helper.make_node("Relu", [c], ["c_r"], name="c_relu"))
nodes.append(helper.make_node("Add", ["c_r", c], ["c_s"], name="c_add"))
d = bn("d", conv("d"), out="d_bn")
nodes.append(helper.make_node("Relu", [d], ["d_r"], name="d_relu"))
nodes.append(helper.make_node("Concat", ["a_r", "b_r", "c_s", "d_r"], ["y"], name="cat", axis=1))

graph = helper.make_graph(
    nodes, "fuse", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", C, 6, 5])],
    [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4 * K, 6, 5]),
     helper.make_tensor_value_info("d_bn", TensorProto.FLOAT, ["N", K, 6, 5])], inits)
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="qdb-tests")
onnx.checker.check_model(model)
onnx.save(model, "tests/data/fuse.onnx")
np.save("tests/data/fuse_in.npy", rng.normal(0, 1, (2, C, 6, 5)).astype(np.float32))
