/* qjson.h - the JSON files of quantization: AIMET runtime configs (in),
 * AIMET encodings files 0.6.1 and 1.0.0 (in and out), and quantizer
 * overrides (the CLI's "PATTERN key=value ..." form and a JSON file).
 *
 * Every error is QD_EINPUT (QD_EFAIL for out of memory or a failed write)
 * with a message naming the file and the JSON path of the offending value,
 * e.g. `cfg.json: op_type.Conv.is_output_quantized: expected "True" or
 * "False"`. Keys are identifiers after a dot, other keys in brackets:
 * `enc.json: param_encodings["conv1.weight"]: ...`. Unknown keys and
 * duplicate keys are errors everywhere: a typo never falls back to a default. */
#ifndef QD_QJSON_H
#define QD_QJSON_H

#include <stddef.h>

#include "err.h"
#include "qconfig.h"
#include "sim.h"

/* ---- AIMET runtime config (quantsim_config JSON) ----
 * The sections and keys of AIMET's schema (quantsim_config_schema.py), with
 * its required keys (all six sections; defaults.ops and defaults.params).
 * Booleans are AIMET's strings "True"/"False"; JSON true/false are accepted
 * too. supported_kernels bit-widths are 4, 8, 16 or 32, dtype "int" or
 * "float"; an op_type kernel without "param" gets param_bits 0 (any).
 * op_type.X.encoding_constraints (a fixed range for an op's output) is
 * rejected: qd_qcfg has no place for it, and dropping it silently would make
 * the simulation differ from AIMET's.
 *
 * On success *c receives a new config (owned by the caller, freed with
 * qd_qcfg_clear; *c is overwritten, not freed first), c->name = name.
 * On failure *c is untouched. */
int qd_qcfg_load(const char *path, qd_qcfg *c, qd_err *e);
/* The same from len bytes of memory (borrowed for the call; need not be
 * NUL-terminated); name is used in messages and as c->name. */
int qd_qcfg_parse(const char *text, size_t len, const char *name, qd_qcfg *c, qd_err *e);
/* A config shipped inside the binary: "default" or "per_channel"
 * (sessions/configs/NAME.json, AIMET's default and per-channel configs). */
int qd_qcfg_builtin(const char *name, qd_qcfg *c, qd_err *e);

/* The embedded config files: the Makefile turns sessions/configs/NAME.json
 * into build/gen/qconfigs.c. Static data, never freed. */
typedef struct qd_qcfg_text {
    const char *name;   /* file name without .json */
    const char *text;   /* the file's bytes, NUL-terminated */
    size_t len;         /* without the NUL */
} qd_qcfg_text;
extern const qd_qcfg_text qd_qcfg_texts[];
extern const int qd_qcfg_ntexts;

/* ---- AIMET encodings ----
 * Write the encodings of every enabled quantizer that has encodings: inputs
 * and activations under activation_encodings, params under param_encodings,
 * in the sim's quantizer order. format "0.6.1": tensor -> [entry per
 * channel] with bitwidth, dtype "int", is_symmetric "True"/"False", max,
 * min, offset, scale. "1.0.0": a list of {name, dtype "INT", enc_type
 * "PER_TENSOR"|"PER_CHANNEL", is_sym, bw, scale[], offset[]}. Doubles are
 * printed with the fewest digits (<= 17) that read back to the same double.
 * The file is written to a temporary file next to path and renamed over it:
 * a failure never leaves a partial file. */
int qd_encodings_write(qd_sim *s, const char *path, const char *format, qd_err *e);

/* Read an encodings file of either version (by "version"; a file without
 * one is read by its shape: objects of tensors are 0.6.1, lists are 1.0.0)
 * and apply it: validates the whole file first (tensor names, entry counts,
 * bit-widths 2..16, scale > 0, offsets on the grid, known keys), then for
 * each tensor sets the quantizer's enabled, bits, symmetric (and strict /
 * unsigned symmetric when the offset says which), per_channel from the
 * file, and its encodings with qd_sim_set_encodings (frozen). 0.6.1 min/max
 * are kept as read; 1.0.0 min/max are recomputed from scale and offset
 * (qd_quant_encoding_so). On error the sim is unchanged.
 * dtype "float" entries (fp16 simulation), per-block and LPBQ encodings
 * are rejected: qdb simulates integer per-tensor/per-channel grids. */
int qd_encodings_read(qd_sim *s, const char *path, qd_err *e);
/* The same from len bytes of memory (borrowed); name is used in messages. */
int qd_encodings_parse(qd_sim *s, const char *text, size_t len, const char *name, qd_err *e);

/* ---- Overrides ----
 * Parse the CLI form "PATTERN key=value [key=value ...]": PATTERN is a
 * tensor name, glob or @group (see qd_sim_override), then at least one of
 *   enabled=0|1|on|off   bits=2..16|32   scheme=sym|asym (symmetric|asymmetric)
 *   strict=0|1   unsigned=0|1   granularity=tensor|channel
 *   range=minmax|sqnr|percentile[:P]|mse|kl (qd_range_parse)
 *   min=F max=F  (a fixed range; both or neither)
 * A key given twice is an error. *pattern gets a malloc'd copy (caller
 * frees); *ov is filled (ov->set says which fields). On error neither is
 * set. */
int qd_override_parse(const char *spec, char **pattern, qd_override *ov, qd_err *e);

/* Read a JSON overrides file and apply it to s:
 *   {"quantizers": [{"match": "PATTERN", "enabled": false, "bits": 4,
 *     "symmetric": true, "strict": false, "unsigned": true,
 *     "per_channel": true, "range": "percentile:99.9", "min": -1.0,
 *     "max": 1.0}, ...]}
 * Every entry needs "match" and at least one setting; booleans are JSON
 * true/false (or "True"/"False"). The whole file is validated first, then
 * the entries are applied in order with qd_sim_override; a pattern that
 * matches nothing is an error naming quantizers[i].match, and then the
 * quantizers' settings are restored to what they were before the call. */
int qd_overrides_load(qd_sim *s, const char *path, qd_err *e);
/* The same from memory (borrowed); name is used in messages. */
int qd_overrides_parse(qd_sim *s, const char *text, size_t len, const char *name, qd_err *e);

#endif
