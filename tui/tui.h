/* tui.h - qdb's interactive debugger: a full-screen ncurses program over a
 * session (sessions/sesscmd.h) with a live simulation. */
#ifndef QD_TUI_H
#define QD_TUI_H

#include "err.h"

/* qdb tui MODEL --data SPEC [--limit N] [--seed S] [--quant wNaM] [--session FILE] [--threads T] */
int tui_cmd(int argc, char **argv, qd_err *e);
/* qdb open SESSION on a terminal (force: go on when the model or data changed). */
int tui_open(const char *path, int force, qd_err *e);
/* qdb with no arguments: the TUI on the bundled demo when stdin and stdout
 * are a terminal, else the flowchart on the demo in batch mode. */
int tui_demo(qd_err *e);

#endif
