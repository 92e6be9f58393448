/* qsetup.c - options -> calibrated qd_sim (see qsetup.h). */
#include "qsetup.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "qjson.h"
#include "util.h"

static int parse_bits(const char *p, char **end, int *bits)
{
    errno = 0;
    long v = strtol(p, end, 10);
    if (*end == p || errno || !((v >= QD_BITS_MIN && v <= QD_BITS_MAX) || v == QD_BITS_FLOAT))
        return -1;
    *bits = (int)v;
    return 0;
}

int qd_qsetup_parse_quant(const char *s, int *wbits, int *abits, qd_err *e)
{
    char *end;
    if (s[0] != 'w' || parse_bits(s + 1, &end, wbits) || *end != 'a' || parse_bits(end + 1, &end, abits) || *end)
        return qd_errf(e, QD_EINPUT,
                       "--quant must look like w8a8 (weight and activation bits, 2..16 or 32 for float), got '%s'",
                       s);
    return QD_OK;
}

void qd_qsetup_fixes_free(qd_qsetup_fixes *f)
{
    if (!f)
        return;
    qd_cle_report_free(&f->cle);
    qd_bc_report_free(&f->bc);
    qd_adaround_report_free(&f->ada);
    memset(f, 0, sizeof *f);
}

static int bc_mode_parse(const char *s, qd_bc_mode *m, qd_err *e)
{
    if (!strcmp(s, "empirical"))
        *m = QD_BC_EMPIRICAL;
    else if (!strcmp(s, "analytic"))
        *m = QD_BC_ANALYTIC;
    else
        return qd_errf(e, QD_EINPUT, "--bias-correct '%s': expected empirical or analytic", s);
    return QD_OK;
}

qd_sim *qd_qsetup_build(const char *model, const qd_qsetup *o, double *calib_s, qd_err *e)
{
    qd_bc_mode bcm = QD_BC_EMPIRICAL;
    if (o->bias_correct && bc_mode_parse(o->bias_correct, &bcm, e))
        return NULL;
    int wbits = 8, abits = 8;
    qd_range_method rm = QD_RANGE_SQNR;
    double pct = 99.99;
    if (calib_s)
        *calib_s = 0;
    if ((o->quant && qd_qsetup_parse_quant(o->quant, &wbits, &abits, e)) ||
        (o->range && qd_range_parse(o->range, &rm, &pct, e)))
        return NULL;
    qd_qcfg cfg = {0};
    const char *cname = o->config ? o->config : o->per_channel == 1 ? "per_channel" : "default";
    int rc = (!strcmp(cname, "default") || !strcmp(cname, "per_channel")) ? qd_qcfg_builtin(cname, &cfg, e)
                                                                          : qd_qcfg_load(cname, &cfg, e);
    if (rc)
        return NULL;
    /* supported_kernels, when the config lists them, bound the bit-widths */
    if (cfg.nkernels) {
        int ok = 0;
        for (int i = 0; i < cfg.nkernels; i++)
            ok |= cfg.kernels[i].act_bits == abits && (!cfg.kernels[i].param_bits || cfg.kernels[i].param_bits == wbits);
        if (!ok) {
            qd_errf(e, QD_EINPUT, "%s: defaults.supported_kernels has no kernel for w%da%d", cname, wbits, abits);
            qd_qcfg_clear(&cfg);
            return NULL;
        }
    }
    qd_graph *g = qd_graph_load(model, e);
    if (!g) {
        qd_qcfg_clear(&cfg);
        return NULL;
    }
    qd_cle_report cle_local = {0}, *cr = o->fixes ? &o->fixes->cle : &cle_local;
    if (o->cle) {
        qd_cle_opts co = QD_CLE_OPTS_DEFAULT;
        co.relu6_to_relu = !o->cle_keep_relu6;
        co.hba = !o->cle_no_hba;
        int crc = qd_cle(g, &co, cr, e);
        if (o->fixes)
            o->fixes->cle_done = !crc;
        else
            qd_cle_report_free(&cle_local);
        if (crc) {
            qd_qcfg_clear(&cfg);
            qd_graph_free(g);
            return qd_err_prefix(e, "%s: cross-layer equalization", model), NULL;
        }
    }
    qd_sim_opts so = {.cfg = &cfg, .act_bits = abits, .param_bits = wbits, .range = rm, .pct = pct,
                      .per_channel = o->per_channel, .nthreads = o->nthreads, .float_bias = o->float_bias};
    qd_dataset *d = NULL;
    qd_sim *s = qd_sim_new(g, &so, e);
    qd_qcfg_clear(&cfg);
    if (!s)
        return qd_err_prefix(e, "%s", model), NULL;
    if (o->overrides && qd_overrides_load(s, o->overrides, e))
        goto fail;
    for (int i = 0; i < o->nsets; i++) {
        char *pat = NULL;
        qd_override ov;
        if (qd_override_parse(o->sets[i], &pat, &ov, e)) {
            qd_err_prefix(e, "--set '%s'", o->sets[i]);
            goto fail;
        }
        rc = qd_sim_override(s, pat, &ov, NULL, e);
        free(pat);
        if (rc) {
            qd_err_prefix(e, "--set '%s'", o->sets[i]);
            goto fail;
        }
    }
    if (o->encodings && qd_encodings_read(s, o->encodings, e))
        goto fail;
    if (o->no_calib)
        return s;
    /* calibrate what the encodings file did not fix */
    int need = 0;
    for (int i = 0; i < qd_sim_count(s); i++) {
        qd_quantizer *q = qd_sim_get(s, i);
        need |= q->kind != QD_QK_PARAM && qd_quantizer_active(q) && !q->frozen && !q->set.fixed;
    }
    const char *spec = o->calib_data ? o->calib_data : "fashion-mnist:train";
    int64_t ncal = o->calib > 0 ? o->calib : 1000;
    double t0 = qd_now_ms();
    if (need || (o->bias_correct && bcm == QD_BC_EMPIRICAL) || o->adaround) {
        d = qd_data_open(spec, o->dopts, e);
        if (!d || qd_data_limit(d, ncal, o->seed, e)) {
            qd_err_prefix(e, "calibrating on %s", spec);
            goto fail;
        }
    }
    if (need ? qd_sim_calibrate(s, d, o->batch > 0 ? o->batch : 64, o->progress, o->user, e)
             : qd_sim_update(s, e)) { /* params only: no images needed */
        qd_err_prefix(e, "calibrating on %s", spec);
        goto fail;
    }
    if (calib_s)
        *calib_s = (qd_now_ms() - t0) / 1e3;
    if (o->bias_correct) {
        int64_t nb = o->bc_images > 0 ? o->bc_images : 512;
        qd_bc_report bl = {0}, *br = o->fixes ? &o->fixes->bc : &bl;
        int brc = qd_bias_correct(s, bcm, d, nb < ncal ? nb : ncal, o->batch > 0 ? o->batch : 64, br, e);
        if (o->fixes)
            o->fixes->bc_done = !brc;
        else
            qd_bc_report_free(&bl);
        if (brc) {
            qd_err_prefix(e, "%s bias correction", qd_bc_mode_name(bcm));
            goto fail;
        }
    }
    if (o->adaround) {
        qd_adaround_opts ao;
        qd_adaround_defaults(&ao);
        if (o->adaround_iters > 0)
            ao.iterations = o->adaround_iters;
        ao.nthreads = o->nthreads > 0 ? o->nthreads : 1;
        ao.seed = o->seed + 1;
        qd_adaround_report al = {0}, *ar = o->fixes ? &o->fixes->ada : &al;
        int arc = qd_adaround(s, d, &ao, NULL, NULL, ar, e);
        if (o->fixes)
            o->fixes->ada_done = !arc;
        else
            qd_adaround_report_free(&al);
        if (arc) {
            qd_err_prefix(e, "AdaRound");
            goto fail;
        }
    }
    /* the activations move with the biases and weights */
    if ((o->bias_correct || o->adaround) && need &&
        qd_sim_calibrate(s, d, o->batch > 0 ? o->batch : 64, o->progress, o->user, e)) {
        qd_err_prefix(e, "calibrating on %s", spec);
        goto fail;
    }
    qd_data_free(d);
    return s;
fail:
    qd_data_free(d);
    qd_sim_free(s);
    return NULL;
}
