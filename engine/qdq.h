/* qdq.h - a quantization simulation exported as a QDQ ONNX model
 * (QuantizeLinear / DequantizeLinear pairs around FP32 ops) that ONNX
 * Runtime and other QDQ-aware runtimes run, computing what the sim computes.
 *
 * From the sim's graph (BN folded; Relu/Clip fused into a Conv are written
 * as separate nodes again, see onnx_save.h):
 *   - each enabled input or activation quantizer on value v:
 *       v -> QuantizeLinear -> "<v>_quantized" -> DequantizeLinear -> "<v>_dequantized"
 *     and every reader of v reads "<v>_dequantized". When v is a graph
 *     output, the DequantizeLinear writes v itself (the output keeps its
 *     name) and the producer's unquantized output is renamed "<v>_float".
 *     Scale and zero point are the initializers "<v>_scale" and
 *     "<v>_zero_point". Signed symmetric encodings (offset -128) use int8
 *     with zero point 0; all others uint8 with zero point -offset.
 *   - each enabled param quantizer on weight w: the integers of the
 *     quantized weight (from the original FP32 weight and the encodings) as
 *     initializer "<w>_quantized", and DequantizeLinear -> w, so the node
 *     reading w is unchanged. int8 with zero point 0 when every channel is
 *     signed symmetric, else uint8 with zero point -offset per channel (a
 *     channel of only positive weights gets the unsigned symmetric grid,
 *     zero point 0, next to signed channels at 128). Per-channel encodings
 *     give 1-D scale and zero point and axis = the quantizer's axis
 *     (opset >= 13).
 *   - a bias the sim holds as int32 (sim.h: on the grid s_in * s_w[c]) is
 *     written as its int32 integers, "<b>_quantized", and DequantizeLinear
 *     -> b with zero point 0 and that scale (1-D along axis 0 when the
 *     weight is per channel): what ONNX Runtime's QLinearConv fusion would
 *     compute from it. A bias with its own quantizer is written as a weight
 *     when 8-bit, else as int32 with zero point 0 (exact at any bit-width);
 *     other biases stay FP32.
 *   - disabled quantizers (and 32-bit "float" ones) get nothing.
 * Fresh names never collide with the graph's: a taken name gets "_2", "_3"...
 * The dequantized values equal the sim's fake-quantized values exactly
 * (same float scale, same round-half-even integers).
 *
 * Refused with QD_EINPUT naming the tensor: an enabled input/activation or
 * weight quantizer whose bit-width is not 8, an input/activation with a
 * strict symmetric grid ([-127, 127] is not a QuantizeLinear range), a
 * quantizer without encodings, a model opset < 10 (no QuantizeLinear), and
 * per-channel encodings at opset < 13. */
#ifndef QD_QDQ_H
#define QD_QDQ_H

#include "graph.h"
#include "sim.h"

/* Build the QDQ graph of s. The caller frees it with qd_graph_free. Its
 * nodes have no op (n->op == NULL: qdb cannot run QuantizeLinear); its
 * constants that are not quantized weights view s's tensors (cap 0), so the
 * graph is valid while s lives and its graph is not rewritten. */
qd_graph *qd_qdq_graph(qd_sim *s, qd_err *e);

/* Build and save to path (atomically, see qd_graph_save). */
int qd_qdq_export(qd_sim *s, const char *path, qd_err *e);

#endif
