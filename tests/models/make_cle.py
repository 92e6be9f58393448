"""Writes tests/data/cle.onnx: layer chains cross-layer equalization works on
and the cases it must leave alone; and tests/data/cle_relu.onnx, the same
with k_clip a Relu. Run from the repository root with Debian's
/usr/bin/python3 (onnx, numpy). Input x: N x 3 x 8 x 8, output y: N x 10.
Weights are seeded random, output channels scaled over orders of magnitude.

  a_conv 3->8 (BN, Relu; channel 2 all zero; large beta on channels 0, 1)
   -> b_conv 8->8 (no BN, no bias; input channel 5 unread) -> Relu
   -> c_dw depthwise (BN, Relu) -> d_conv 1x1 (BN) -> Relu      pair a-b, triplet b-c-d
   -> e_grp group 2 (BN, Relu)                                   grouped: skipped
   -> f_conv 1x1 (BN) -> Add(f, e's Relu)                        followed by Add
   -> g1_conv (Relu), g2_conv -> Concat                          followed by Concat
   -> k_conv (BN) -> Clip(0, 6) -> m_conv 1x1 (BN, Relu)         ReLU6: pair k-m only when replaced
   -> n_conv -> PRelu -> o_conv 1x1                              pairs m-n, n-o
   -> Clip(-1, 1) -> h_conv -> Clip(-1, 1)                       not homogeneous: o ends its chain, h skipped
   -> GlobalAveragePool -> Flatten
   -> p_fc Gemm 8->16 (transB) -> Relu -> q_fc Gemm 16->10 (W is K x N) -> y    pair p-q
"""
import numpy as np
import onnx
from onnx import helper, numpy_helper, TensorProto

rng = np.random.default_rng(11)
inits, nodes = [], []


def const(name, arr):
    inits.append(numpy_helper.from_array(np.asarray(arr, dtype=np.float32), name))
    return name


def spread(co):
    """Per output channel factors over about three orders of magnitude."""
    return np.exp(rng.normal(0, 1.2, co))


def conv(tag, x, ci, co, k=3, group=1, bias=True, zero_out=None, zero_in=None):
    w = rng.normal(0, 1 / np.sqrt(ci // group * k * k), (co, ci // group, k, k))
    w *= spread(co)[:, None, None, None]
    if zero_out is not None:
        w[zero_out] = 0
    if zero_in is not None:
        w[:, zero_in] = 0
    ins = [x, const(f"{tag}_w", w)]
    if bias:
        b = rng.normal(0, 0.2, co)
        if zero_out is not None:
            b[zero_out] = 0
        ins.append(const(f"{tag}_b", b))
    nodes.append(helper.make_node("Conv", ins, [f"{tag}_c"], name=tag, group=group,
                                  pads=[k // 2] * 4))
    return f"{tag}_c"


def bn(tag, x, c, big_beta=()):
    g = rng.uniform(0.5, 1.5, c)
    be = rng.normal(0, 0.3, c)
    for i in big_beta:
        g[i], be[i] = 0.3, 1.5
    ins = [x, const(f"{tag}_g", g), const(f"{tag}_be", be), const(f"{tag}_m", rng.normal(0, 0.3, c)),
           const(f"{tag}_v", rng.uniform(0.3, 2.0, c))]
    nodes.append(helper.make_node("BatchNormalization", ins, [f"{tag}_bn"], name=f"{tag}_bnorm", epsilon=1e-5))
    return f"{tag}_bn"


def act(op, x, name, *extra, **attrs):
    nodes.append(helper.make_node(op, [x, *extra], [f"{name}_y"], name=name, **attrs))
    return f"{name}_y"


C = 8
t = act("Relu", bn("a", conv("a_conv", "x", 3, C, zero_out=2), C, big_beta=(0, 1)), "a_relu")
t = act("Relu", conv("b_conv", t, C, C, bias=False, zero_in=5), "b_relu")
t = act("Relu", bn("c", conv("c_dw", t, C, C, group=C), C, big_beta=(3,)), "c_relu")
t = act("Relu", bn("d", conv("d_conv", t, C, C, k=1), C), "d_relu")
e = act("Relu", bn("e", conv("e_grp", t, C, C, group=2), C), "e_relu")
f = bn("f", conv("f_conv", e, C, C, k=1), C)
t = act("Add", f, "f_add", e)
g1 = act("Relu", conv("g1_conv", t, C, C // 2), "g1_relu")
g2 = conv("g2_conv", t, C, C // 2)
nodes.append(helper.make_node("Concat", [g1, g2], ["cat_y"], name="cat", axis=1))
t = act("Clip", bn("k", conv("k_conv", "cat_y", C, C), C), "k_clip", const("zero", 0.0), const("six", 6.0))
t = act("Relu", bn("m", conv("m_conv", t, C, C, k=1), C, big_beta=(1, 6)), "m_relu")
t = act("PRelu", conv("n_conv", t, C, C), "n_prelu", const("n_slope", rng.uniform(0.05, 0.3, (C, 1, 1))))
t = act("Clip", conv("o_conv", t, C, C, k=1), "o_clip", const("m_one", -1.0), const("one", 1.0))
t = act("Clip", conv("h_conv", t, C, C), "h_clip", "m_one", "one")
t = act("GlobalAveragePool", t, "gap")
t = act("Flatten", t, "flat")
p_w = rng.normal(0, 0.3, (16, C)) * spread(16)[:, None]
nodes.append(helper.make_node("Gemm", [t, const("p_w", p_w), const("p_b", rng.normal(0, 0.1, 16))], ["p_y"],
                              name="p_fc", transB=1))
t = act("Relu", "p_y", "p_relu")
q_w = rng.normal(0, 0.3, (16, 10)) * spread(16)[:, None]
nodes.append(helper.make_node("Gemm", [t, const("q_w", q_w), const("q_b", rng.normal(0, 0.1, 10))], ["y"],
                              name="q_fc"))

graph = helper.make_graph(nodes, "cle", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 10])], inits)
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="qdb-tests")
onnx.checker.check_model(model)
onnx.save(model, "tests/data/cle.onnx")

# The same graph with k's Clip(0, 6) a Relu: what CLE with relu6_to_relu must compute.
for n in model.graph.node:
    if n.name == "k_clip":
        n.op_type = "Relu"
        del n.input[1:]
onnx.checker.check_model(model)
onnx.save(model, "tests/data/cle_relu.onnx")
