/* onnx_save.h - qd_graph -> ONNX ModelProto (the inverse of onnx_load.c).
 *
 * What is written:
 *   - ir_version (the graph's, or the lowest the opset needs when unknown),
 *     one opset_import for the default domain (g->opset);
 *   - graph inputs and outputs with their declared dtype and shape (a dynamic
 *     dim is written without value or name);
 *   - every value with constant data that a node or graph output reads, as an
 *     initializer (raw_data, little-endian); Constant nodes the loader folded
 *     come back as initializers;
 *   - the nodes in g's (topological) order with all their attributes.
 * A Conv that qd_graph_fuse gave a clamp (fused_clip) is split again: the
 * Conv writes a fresh value "<out>_preact" read by a Relu (clamp [0, inf)) or
 * a Clip (bounds as initializers "<node>_clip_min/max" from opset 11, as
 * attributes before) that writes the Conv's value; fresh names never collide
 * with names in g.
 *
 * Nodes are written from name, op_type, in/out, attrs and fused_clip only
 * (n->op is not used), so a caller may build a graph holding ops qdb cannot
 * run (QuantizeLinear ...) and save it. */
#ifndef QD_ONNX_SAVE_H
#define QD_ONNX_SAVE_H

#include <stddef.h>

#include "graph.h"

/* Serialize g into a malloc'd buffer (*buf, *len; the caller frees *buf).
 * QD_EINPUT naming the node and attribute when an attribute has a type qdb
 * keeps by name only (graphs, sparse tensors, type protos), or naming the
 * value when a tensor has a dtype that cannot be written. */
int qd_graph_save_mem(const qd_graph *g, void **buf, size_t *len, qd_err *e);

/* Same into the file path, atomically: written to a temporary file in the
 * same folder, then renamed over path. On any failure (QD_EINPUT naming path
 * when it cannot be written) nothing is left behind and an existing file at
 * path is untouched. */
int qd_graph_save(const qd_graph *g, const char *path, qd_err *e);

#endif
