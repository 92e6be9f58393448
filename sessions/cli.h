/* cli.h - the argv front end: qdb COMMAND [ARGS...] through the command table. */
#ifndef QD_CLI_H
#define QD_CLI_H

#include "err.h"

/* Run one command line; returns the exit code (0 ok, 1 failure, 2 bad input). */
int qd_cli_main(int argc, char **argv);

/* A command of the table by name (NULL if none): what qdb do runs. */
typedef int (*cli_fn)(int argc, char **argv, qd_err *e);
cli_fn cli_command(const char *name);

/* Ask a running qdb debug to stop as Ctrl-C does (keeping what it
 * measured); safe from another thread or a signal handler. */
void cli_debug_stop(void);

#endif
