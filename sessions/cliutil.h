/* cliutil.h - what qdb's command files share: option tables and their
 * parser, the quantization options of every simulating command, JSON output
 * and the progress bar. Internal to the CLI (sessions/cli*.c). */
#ifndef QD_CLIUTIL_H
#define QD_CLIUTIL_H

#include <stdint.h>

#include <cJSON.h>

#include "data.h"
#include "qsetup.h"

#define OPT_MAXVALS 32

typedef struct opt {
    const char *name;   /* "--threads" */
    int has_arg;
    const char *val;    /* set when seen: the (last) argument, or "" for flags */
    int nvals;          /* every argument given, in order (repeatable options) */
    const char *vals[OPT_MAXVALS];
} opt;

typedef struct args {
    const char *cmd;
    const char *pos[4];
    int npos;
} args;

/* Parse argv[1..] of command cmd into opts (and the second table more, may
 * be NULL) and at most maxpos positionals. --name=value and --name value
 * both work. Returns QD_OK or QD_EINPUT with a message in e. */
int cli_parse2(const char *cmd, int argc, char **argv, opt *opts, opt *more, int maxpos, args *a, qd_err *e);
int cli_parse(const char *cmd, int argc, char **argv, opt *opts, int maxpos, args *a, qd_err *e);
/* s as an integer in [lo, hi] into *out; QD_EINPUT naming option name. */
int cli_parse_int(const char *cmd, const char *name, const char *s, long lo, long hi, long *out, qd_err *e);
/* A comma list of bit-widths QD_BITS_MIN..QD_BITS_MAX ("8,6,4"), at most
 * max of them, into out[0..*n): QD_EINPUT naming cmd and opt_name else. */
int cli_parse_bits(const char *cmd, const char *opt_name, const char *s, int *out, int max, int *n, qd_err *e);

/* Print a JSON object on stdout (one line) and free it; while a capture
 * is on, keep it for cli_capture_take instead of printing it. */
int cli_print_json(cJSON *j);

/* rm -r path, not following symlinks (a missing path is fine). */
void cli_rmtree(const char *path);
/* Commands run for a session (sesscmd.c) hand their JSON result over
 * through this capture; one command runs at a time. */
void cli_capture_begin(void);
/* The last object printed since cli_capture_begin (the caller owns it; NULL
 * if none); ends the capture. */
cJSON *cli_capture_take(void);

/* Progress bar on stderr (a qd_progress_fn; user is a progress). */
typedef struct progress { double t0; int tty; } progress;
int cli_progress(void *user, int64_t done, int64_t total);
/* While a hook is set (the TUI runs commands), cli_progress reports to it
 * instead of drawing on stderr, and returns what it returns (non-zero
 * stops the work where the command allows it). */
typedef int (*cli_progress_hook_fn)(void *user, int64_t done, int64_t total);
void cli_progress_set_hook(cli_progress_hook_fn fn, void *user);
int cli_progress_hooked(void);
/* Progress is wanted: a hook is set, or stderr is a terminal. */
int cli_progress_on(void);

/* ---- the quantization options shared by eval, sweep, run and export ---- */

enum { Q_QUANT, Q_PC, Q_PT, Q_RANGE, Q_CALIB, Q_CALIBDATA, Q_CONFIG, Q_SET, Q_OVERRIDES, Q_ENC, Q_BIAS, Q_CLE, Q_CLEKEEP, Q_CLENOHBA, Q_BC, Q_ADA, Q_ADAIT, Q__N };
#define QUANT_OPTS                                                                                            \
    {                                                                                                         \
        {.name = "--quant", .has_arg = 1}, {.name = "--per-channel", .has_arg = 0}, {.name = "--per-tensor", .has_arg = 0}, {.name = "--range", .has_arg = 1},    \
            {.name = "--calib", .has_arg = 1}, {.name = "--calib-data", .has_arg = 1}, {.name = "--config", .has_arg = 1}, {.name = "--set", .has_arg = 1},       \
            {.name = "--overrides", .has_arg = 1}, {.name = "--encodings", .has_arg = 1}, {.name = "--bias", .has_arg = 1}, {.name = "--cle", .has_arg = 0}, {.name = "--cle-keep-relu6", .has_arg = 0}, {.name = "--cle-no-hba", .has_arg = 0}, {.name = "--bias-correct", .has_arg = 1}, {.name = "--adaround", .has_arg = 0}, {.name = "--adaround-iters", .has_arg = 1}, { 0 }                                         \
    }

#define QUANT_HELP                                                                                            \
    "quantization (any of these turns the simulation on):\n"                                                  \
    "  --quant wNaM       weight / activation bits, 2..16 or 32 = float (default w8a8)\n"                      \
    "  --per-channel      per-channel weights (the built-in per_channel config);\n"                           \
    "  --per-tensor       per-tensor weights (default unless --config says otherwise)\n"                      \
    "  --range R          minmax | sqnr (default, AIMET tf_enhanced) | percentile[:P] | mse | kl\n"             \
    "  --calib N          calibration images (default 1000, a seeded subset; --seed S)\n"                     \
    "  --calib-data SPEC  calibration set (default fashion-mnist:train; for other --data, the same set)\n"     \
    "  --config FILE      AIMET quantsim runtime config JSON (built in: default, per_channel)\n"              \
    "  --overrides FILE   per-quantizer overrides JSON: {\"quantizers\": [{\"match\": GLOB, ...}]}\n"         \
    "  --set 'GLOB k=v..' override quantizers by tensor name, glob or @weights/@activations/@inputs/@all:\n"  \
    "                     enabled=0|1 bits=N scheme=sym|asym strict=0|1 unsigned=0|1\n"                       \
    "                     granularity=tensor|channel range=R min=F max=F  (repeatable, applied in order)\n"     \
    "  --encodings FILE   import AIMET encodings (0.6.1 or 1.0.0) and freeze them\n"                      \
    "  --bias int32|float biases of quantized Conv/Gemm as int32 on the grid s_in*s_w, as integer\n"       \
    "                     kernels hold them (default), or left in FP32 (as AIMET's sim does)\n"    \
    "fixes for weight quantization (AIMET white paper ch. 4), applied in this order:\n"                    \
    "  --cle              cross-layer equalization of the FP32 model first (ReLU6 -> ReLU between\n"     \
    "                     equalized layers, high-bias absorption)\n"                                      \
    "  --cle-keep-relu6   with --cle: leave ReLU6 alone (those chains are not equalized)\n"               \
    "  --cle-no-hba       with --cle: no high-bias absorption\n"                                         \
    "  --bias-correct M   empirical (on 512 of the calibration images) or analytic (from the BNs)\n"     \
    "  --adaround         learn each Conv/Gemm weight's rounding (Nagel et al. 2020) on the\n"          \
    "                     calibration images; the weight encodings are then frozen\n"                   \
    "  --adaround-iters N Adam steps per layer (default 500)\n"

/* Weight fixes as bits (sweep --fixes, debug --fixes). */
enum { CLI_FIX_CLE = 1, CLI_FIX_BC = 2, CLI_FIX_ADA = 4, CLI_FIX_PC = 8 };
/* One '+' list such as "cle+bc" (or "none") into *out; pc only when
 * allow_pc. QD_EINPUT naming cmd and opt_name on an unknown fix. */
int cli_parse_fix(const char *cmd, const char *opt_name, const char *item, int allow_pc, unsigned *out, qd_err *e);

/* Whether any quantization option was given. */
int cli_quant_given(const opt *q);
/* Fill o from the parsed quantization options q. data_spec is the
 * command's --data (or NULL): Fashion-MNIST calibrates on its training
 * split, other data on itself. */
int cli_quant_setup(const char *cmd, const opt *q, const char *data_spec, long seed, long threads, long batch,
                    const qd_data_opts *dopt, qd_qsetup *o, qd_err *e);
const char *cli_range_label(const qd_qsetup *o);
/* The "sim" object of --json output, and the same as text. */
cJSON *cli_json_quant(const qd_qsetup *o, qd_sim *s, double calib_s);
void cli_print_quant(const qd_qsetup *o, qd_sim *s, double calib_s);

/* Commands of cli_fix.c (the table is in cli.c). */
int cli_cmd_cle(int argc, char **argv, qd_err *e);
int cli_cmd_bias_correct(int argc, char **argv, qd_err *e);
int cli_cmd_adaround(int argc, char **argv, qd_err *e);
/* cli_debug.c */
int cli_cmd_debug(int argc, char **argv, qd_err *e);
/* cli_plot.c */
int cli_cmd_plot(int argc, char **argv, qd_err *e);
/* sesscmd.c: qdb do, qdb open, qdb replay, qdb export bundle */
int cli_cmd_do(int argc, char **argv, qd_err *e);
int cli_cmd_open(int argc, char **argv, qd_err *e);
int cli_cmd_replay(int argc, char **argv, qd_err *e);
int cli_export_bundle(int argc, char **argv, qd_err *e);

#endif
