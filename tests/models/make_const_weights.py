"""Writes tests/data/const_weights.onnx: a Conv + BN + Relu + Reshape + Gemm
whose weights all live in Constant nodes (as in models converted from Paddle or
TensorFlow), with a dynamic batch. Run with Debian's /usr/bin/python3."""
import numpy as np
import onnx
from onnx import helper, numpy_helper, TensorProto

rng = np.random.default_rng(11)
nodes = []


def constant(name, arr, dtype=np.float32):
    nodes.append(helper.make_node("Constant", [], [name], name=f"const_{name}",
                                  value=numpy_helper.from_array(np.asarray(arr, dtype=dtype), name)))


constant("w", rng.normal(0, 0.4, (6, 2, 3, 3)))
constant("b", rng.normal(0, 0.4, 6))
for p, v in (("g", rng.uniform(0.5, 2, 6)), ("be", rng.normal(0, 1, 6)), ("m", rng.normal(0, 1, 6)),
             ("v", rng.uniform(0.2, 3, 6))):
    constant(p, v)
constant("shape", [-1, 6 * 4 * 4], np.int64)
constant("fw", rng.normal(0, 0.2, (5, 96)))
constant("fb", rng.normal(0, 0.2, 5))
nodes += [
    helper.make_node("Conv", ["x", "w", "b"], ["c"], name="conv", strides=[2, 2], pads=[1, 1, 1, 1]),
    helper.make_node("BatchNormalization", ["c", "g", "be", "m", "v"], ["n"], name="bn"),
    helper.make_node("Relu", ["n"], ["r"], name="relu"),
    helper.make_node("Reshape", ["r", "shape"], ["f"], name="flat"),
    helper.make_node("Gemm", ["f", "fw", "fb"], ["y"], name="fc", transB=1),
]
graph = helper.make_graph(nodes, "const_weights",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2, 8, 8])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 5])])
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)], producer_name="qdb-tests")
onnx.checker.check_model(model)
onnx.save(model, "tests/data/const_weights.onnx")
np.save("tests/data/const_weights_in.npy", rng.normal(0, 1, (3, 2, 8, 8)).astype(np.float32))
