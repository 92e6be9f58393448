/* qconfig.h - AIMET's quantsim runtime configuration as plain data: where
 * quantizers go and their default schemes. Parsed from AIMET's JSON format
 * by sessions/qjson.c; consumed by sim.c's placement.
 *
 * Tri-state fields are -1 when the file does not set them. */
#ifndef QD_QCONFIG_H
#define QD_QCONFIG_H

typedef struct qd_qcfg_param {
    char *name;              /* "weight", "bias" (AIMET param roles) */
    int is_quantized;        /* -1 unset */
    int is_symmetric;        /* -1 unset */
} qd_qcfg_param;

typedef struct qd_qcfg_kernel {  /* one supported_kernels entry */
    int act_bits, param_bits;    /* bitwidths (param_bits 0: an op_type kernel without "param", any); 16 with dtype float means fp16 */
    int act_float, param_float;  /* dtype "float" */
} qd_qcfg_kernel;

typedef struct qd_qcfg_op {
    char *op_type;           /* ONNX op type, e.g. "Conv" */
    int is_input_quantized;  /* -1 unset */
    int is_output_quantized; /* -1 unset */
    int is_symmetric;        /* activations of this op; -1 unset */
    int per_channel;         /* per_channel_quantization of its params; -1 unset */
    int nparams;
    qd_qcfg_param *params;
    int nkernels;
    qd_qcfg_kernel *kernels;
} qd_qcfg_op;

typedef struct qd_qcfg_group {
    int n;
    char **ops;              /* op types in chain order */
} qd_qcfg_group;

typedef struct qd_qcfg {
    char *name;              /* file path or built-in name, for messages */
    /* "defaults" */
    int ops_output_quantized;   /* defaults.ops.is_output_quantized (0 when unset) */
    int ops_input_quantized;    /* defaults.ops.is_input_quantized (0 when unset) */
    int ops_symmetric;          /* defaults.ops.is_symmetric (0 when unset) */
    int params_quantized;       /* defaults.params.is_quantized (0 when unset) */
    int params_symmetric;       /* defaults.params.is_symmetric (0 when unset) */
    int strict_symmetric;       /* defaults.strict_symmetric (0 when unset) */
    int unsigned_symmetric;     /* defaults.unsigned_symmetric (1 when unset, as AIMET) */
    int per_channel;            /* defaults.per_channel_quantization (0 when unset) */
    int nkernels;               /* defaults.supported_kernels (0 = anything goes) */
    qd_qcfg_kernel *kernels;
    char *hw_version;           /* defaults.hw_version or NULL */
    /* "params": per role, overriding defaults.params */
    int nparams;
    qd_qcfg_param *params;
    /* "op_type" */
    int nops;
    qd_qcfg_op *ops;
    /* "supergroups" */
    int ngroups;
    qd_qcfg_group *groups;
    /* "model_input" / "model_output" */
    int input_quantized;        /* model_input.is_input_quantized (0 when unset) */
    int output_quantized;       /* model_output.is_output_quantized (0 when unset) */
} qd_qcfg;

/* Free what c owns (not c itself); c may be NULL. */
void qd_qcfg_clear(qd_qcfg *c);
/* Entry for an op type, or NULL. */
const qd_qcfg_op *qd_qcfg_find_op(const qd_qcfg *c, const char *op_type);

#endif
