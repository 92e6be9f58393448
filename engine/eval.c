/* eval.c - top-1 / top-5 accuracy of a classifier over a dataset. */
#include "eval.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>

/* Does a C x H x W sample fit the model's single NCHW input? */
static int check_fit(const qd_graph *g, const qd_dataset *d, qd_err *e)
{
    if (g->ninputs != 1)
        return qd_errf(e, QD_EINPUT, "model takes %d inputs; eval feeds one image tensor", g->ninputs);
    const qd_value *v = &g->values[g->inputs[0]];
    int64_t chw[3];
    qd_data_sample_shape(d, chw);
    if (v->dtype != QD_UNDEF && v->dtype != QD_F32)
        return qd_errf(e, QD_EINPUT, "model input '%s' is %s; eval feeds float32 images", v->name,
                       qd_dtype_name(v->dtype));
    if (v->ndim >= 0 && v->ndim != 4)
        return qd_errf(e, QD_EINPUT, "model input '%s' has rank %d; eval feeds N x C x H x W images", v->name,
                       v->ndim);
    for (int i = 1; v->ndim == 4 && i < 4; i++)
        if (v->dims[i] >= 0 && v->dims[i] != chw[i - 1]) {
            char a[96], b[96];
            return qd_errf(e, QD_EINPUT, "data samples are %s but model input '%s' is %s",
                           qd_shape_str(3, chw, a, sizeof a), v->name, qd_shape_str(3, v->dims + 1, b, sizeof b));
        }
    return QD_OK;
}

/* Rank of the label's logit among the row (0 = top-1). */
static int label_rank(const float *row, int classes, int64_t label)
{
    if (label < 0 || label >= classes)
        return classes;
    float v = row[label];
    int rank = 0;
    for (int c = 0; c < classes; c++)
        rank += row[c] > v || (row[c] == v && c < label); /* ties: lower index first, like argmax */
    return rank;
}

int qd_eval_run(const qd_graph *g, qd_dataset *d, const qd_eval_opts *o, qd_eval_result *r, qd_err *e)
{
    qd_eval_opts def = {0};
    if (!o)
        o = &def;
    memset(r, 0, sizeof *r);
    if (check_fit(g, d, e))
        return e->code;
    int64_t total = qd_data_count(d), batch = o->batch > 0 ? o->batch : 64;
    r->labeled = qd_data_has_labels(d);
    qd_tensor x = {0};
    int64_t *labels = malloc((size_t)batch * sizeof *labels);
    qd_exec *ex = qd_exec_new(g, o->nthreads > 0 ? o->nthreads : 1, e);
    int rc = QD_OK;
    if (!labels || !ex) {
        rc = qd_errf(e, QD_EFAIL, "out of memory");
        goto out;
    }
    double t0 = qd_now_ms() / 1e3;
    for (int64_t start = 0; start < total; start += batch) {
        int64_t n = total - start < batch ? total - start : batch;
        if ((rc = qd_data_batch(d, start, n, &x, labels, e)) || (rc = qd_exec_run(ex, &x, 1, e)))
            goto out;
        const qd_tensor *y = qd_exec_output(ex, 0);
        if (y->dtype != QD_F32 || y->ndim != 2 || y->shape[0] != n) {
            char b[96];
            rc = qd_errf(e, QD_EINPUT, "model output '%s' is %s; eval needs logits N x classes",
                         g->values[g->outputs[0]].name, qd_shape_str(y->ndim, y->shape, b, sizeof b));
            goto out;
        }
        r->classes = (int)y->shape[1];
        for (int64_t i = 0; r->labeled && i < n; i++) {
            int rank = label_rank((const float *)y->data + i * y->shape[1], r->classes, labels[i]);
            r->top1 += rank < 1;
            r->top5 += rank < 5;
        }
        r->images += n;
        if (o->progress && o->progress(o->user, r->images, total)) {
            r->stopped = 1;
            break;
        }
    }
    r->seconds = qd_now_ms() / 1e3 - t0;
out:
    qd_exec_free(ex);
    qd_tensor_free(&x);
    free(labels);
    return rc;
}
