#!/usr/bin/python3
"""make_bad.py - writes the bad-input fixtures of tests/t_badinput.sh into
tests/data/bad/ (committed; rerun only to change them).

Run with Debian's python (onnx 1.12 + numpy):  /usr/bin/python3 tests/models/make_bad.py

Every file is small and deterministic. Each bad model is broken in exactly
one way; the comment on each says which, and t_badinput.sh checks that qdb's
message names the file and that reason.
"""
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "bad")


def save(model, name, check=True):
    if check:
        onnx.checker.check_model(model)
    path = os.path.join(OUT, name)
    with open(path, "wb") as f:
        f.write(model.SerializeToString())
    return path


def write_bytes(name, data):
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)


def model(nodes, inputs, outputs, inits=(), opset=13, name="bad"):
    g = helper.make_graph(nodes, name, inputs, outputs, initializer=list(inits))
    m = helper.make_model(g, producer_name="qdb-make_bad",
                          opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    return m


def f32(name, shape):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


rng = np.random.RandomState(0)

# Weights of the good model: Conv 1->4 3x3 pad 1, Gemm 4->3.
CONV_W = (rng.randn(4, 1, 3, 3) * 0.5).astype(np.float32)
CONV_B = (rng.randn(4) * 0.1).astype(np.float32)
GEMM_W = (rng.randn(3, 4) * 0.5).astype(np.float32)  # transB=1: (out, in)
GEMM_B = (rng.randn(3) * 0.1).astype(np.float32)


def good_model():
    """Conv+Relu+GlobalAveragePool+Flatten+Gemm on a 1x1x8x8 input -> 1x3."""
    nodes = [
        helper.make_node("Conv", ["input", "conv.weight", "conv.bias"], ["c"], name="conv_1",
                         kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"], name="relu_1"),
        helper.make_node("GlobalAveragePool", ["r"], ["p"], name="gap_1"),
        helper.make_node("Flatten", ["p"], ["f"], name="flatten_1", axis=1),
        helper.make_node("Gemm", ["f", "fc.weight", "fc.bias"], ["logits"], name="fc_1",
                         transB=1),
    ]
    inits = [numpy_helper.from_array(CONV_W, "conv.weight"),
             numpy_helper.from_array(CONV_B, "conv.bias"),
             numpy_helper.from_array(GEMM_W, "fc.weight"),
             numpy_helper.from_array(GEMM_B, "fc.bias")]
    return model(nodes, [f32("input", [1, 1, 8, 8])], [f32("logits", [1, 3])], inits,
                 name="good")


def good_reference(x):
    """numpy forward pass of good_model (the expected good_out.npy)."""
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    c = np.zeros((1, 4, 8, 8), np.float64)
    for o in range(4):
        for i in range(8):
            for j in range(8):
                c[0, o, i, j] = np.sum(xp[0, 0, i:i + 3, j:j + 3] * CONV_W[o, 0]) + CONV_B[o]
    r = np.maximum(c, 0)
    p = r.mean(axis=(2, 3))
    return (p @ GEMM_W.T.astype(np.float64) + GEMM_B).astype(np.float32)


def npy_bytes(a):
    import io
    b = io.BytesIO()
    np.save(b, a)
    return b.getvalue()


def main():
    os.makedirs(OUT, exist_ok=True)
    good = good_model()
    save(good, "good.onnx")
    good_bytes = good.SerializeToString()

    x = rng.randn(1, 1, 8, 8).astype(np.float32)
    write_bytes("good_in.npy", npy_bytes(x))
    write_bytes("good_out.npy", npy_bytes(good_reference(x)))
    # Rank 3 instead of the declared 1x1x8x8.
    write_bytes("bad_in_shape.npy", npy_bytes(rng.randn(1, 8, 8).astype(np.float32)))
    # int32 instead of float32.
    write_bytes("bad_in_dtype.npy", npy_bytes(np.arange(64, dtype=np.int32).reshape(1, 1, 8, 8)))
    # Header intact, data cut in half.
    gi = npy_bytes(x)
    write_bytes("truncated.npy", gi[:len(gi) - 128])

    # A valid model cut in half: the protobuf ends inside a field.
    write_bytes("truncated.onnx", good_bytes[:len(good_bytes) // 2])

    # Random bytes that are not a protobuf message (checked below).
    junk = np.random.RandomState(7).bytes(1024)
    write_bytes("corrupt.onnx", junk)
    try:
        onnx.load_model_from_string(junk)
        sys.exit("corrupt.onnx parses as a model; pick another seed")
    except Exception:
        pass

    # An empty file.
    write_bytes("empty.onnx", b"")

    # An LSTM node named lstm_1: a valid model with an op qdb does not run.
    hidden, inp = 2, 3
    w = numpy_helper.from_array(rng.randn(1, 4 * hidden, inp).astype(np.float32), "W")
    r = numpy_helper.from_array(rng.randn(1, 4 * hidden, hidden).astype(np.float32), "R")
    m = model([helper.make_node("LSTM", ["X", "W", "R"], ["Y"], name="lstm_1", hidden_size=hidden)],
              [f32("X", [4, 1, inp])], [f32("Y", [4, 1, 1, hidden])], [w, r])
    save(m, "unsupported_op.onnx")

    # Conv on float16 input and weights (valid ONNX; qdb runs float32 only).
    m = model([helper.make_node("Conv", ["x", "w16"], ["y"], name="conv_f16", kernel_shape=[3, 3])],
              [helper.make_tensor_value_info("x", TensorProto.FLOAT16, [1, 1, 8, 8])],
              [helper.make_tensor_value_info("y", TensorProto.FLOAT16, [1, 2, 6, 6])],
              [numpy_helper.from_array(rng.randn(2, 1, 3, 3).astype(np.float16), "w16")])
    save(m, "bad_dtype.onnx")

    # An initializer whose data lives in an external file (weights.bin,
    # deliberately absent).
    wt = TensorProto()
    wt.name, wt.data_type = "ext.weight", TensorProto.FLOAT
    wt.dims.extend([2, 1, 3, 3])
    wt.data_location = TensorProto.EXTERNAL
    for k, v in (("location", "weights.bin"), ("offset", "0"), ("length", "72")):
        e = wt.external_data.add()
        e.key, e.value = k, v
    m = model([helper.make_node("Conv", ["x", "ext.weight"], ["y"], name="conv_ext",
                                kernel_shape=[3, 3])],
              [f32("x", [1, 1, 8, 8])], [f32("y", [1, 2, 6, 6])], [wt])
    save(m, "external_data.onnx", check=False)

    # Conv whose weight "conv.weight" is neither input, initializer nor produced.
    m = model([helper.make_node("Conv", ["x", "conv.weight"], ["y"], name="conv_missing",
                                kernel_shape=[3, 3])],
              [f32("x", [1, 1, 8, 8])], [f32("y", [1, 2, 6, 6])])
    save(m, "missing_init.onnx", check=False)

    # add_1 reads relu_1's output, relu_1 reads add_1's: a cycle.
    m = model([helper.make_node("Add", ["x", "loop_b"], ["loop_a"], name="add_1"),
               helper.make_node("Relu", ["loop_a"], ["loop_b"], name="relu_1")],
              [f32("x", [1, 4])], [f32("loop_a", [1, 4])])
    save(m, "cyclic.onnx", check=False)

    # The graph output "ghost" is produced by no node.
    m = model([helper.make_node("Relu", ["x"], ["y"], name="relu_1")],
              [f32("x", [1, 4])], [f32("ghost", [1, 4])])
    save(m, "unknown_tensor.onnx", check=False)

    # Default-domain opset 18, newer than qdb's QD_OPSET_MAX (17).
    m = model([helper.make_node("Relu", ["x"], ["y"], name="relu_1")],
              [f32("x", [1, 4])], [f32("y", [1, 4])], opset=18)
    save(m, "opset_too_new.onnx", check=False)

    total = 0
    for f in sorted(os.listdir(OUT)):
        n = os.path.getsize(os.path.join(OUT, f))
        total += n
        print(f"{n:7d}  {f}")
    print(f"{total:7d}  total")


if __name__ == "__main__":
    main()
