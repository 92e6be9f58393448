/* op_conv.c - operators (placeholder table, filled by the operator work). */
#include "ops.h"

const qd_op qd_ops_conv[] = {
    {0},
};
