/* main.c - qdb's entry point: get the fast BLAS kernels, then run the
 * command; the TUI's ways in (no arguments, tui, open on a terminal) here
 * because the TUI sits above the command layer. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cpu.h"
#include "sessions/cli.h"
#include "tui/tui.h"

static int report(const char *cmd, int rc, const qd_err *e)
{
    if (rc)
        fprintf(stderr, "%s%s%s\n", strncmp(e->msg, "qdb", 3) ? cmd : "", strncmp(e->msg, "qdb", 3) ? ": " : "",
                e->code ? e->msg : "failed");
    return rc ? (e->code ? e->code : rc) : 0;
}

/* qdb open SESSION [--force] on a terminal opens the TUI; anything else
 * (--json, --help, no terminal) is the command's printout. */
static int open_tui(int argc, char **argv)
{
    const char *path = NULL;
    int force = 0;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--force"))
            force = 1;
        else if (argv[i][0] == '-' || path)
            return -1;
        else
            path = argv[i];
    }
    if (!path || !isatty(0) || !isatty(1))
        return -1;
    qd_err e = {0};
    return report("qdb open", tui_open(path, force, &e), &e);
}

int main(int argc, char **argv)
{
    qd_cpu_reexec_for_blas(argv);
    qd_err e = {0};
    if (argc < 2)
        return report("qdb", tui_demo(&e), &e);
    if (!strcmp(argv[1], "tui"))
        return report("qdb tui", tui_cmd(argc - 1, argv + 1, &e), &e);
    if (!strcmp(argv[1], "open")) {
        int rc = open_tui(argc, argv);
        if (rc >= 0)
            return rc;
    }
    return qd_cli_main(argc, argv);
}
