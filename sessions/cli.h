/* cli.h - the argv front end: qdb COMMAND [ARGS...] through the command table. */
#ifndef QD_CLI_H
#define QD_CLI_H

/* Run one command line; returns the exit code (0 ok, 1 failure, 2 bad input). */
int qd_cli_main(int argc, char **argv);

#endif
