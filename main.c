/* main.c - qdb's entry point: get the fast BLAS kernels, then run the command. */
#include "cpu.h"
#include "sessions/cli.h"

int main(int argc, char **argv)
{
    qd_cpu_reexec_for_blas(argv);
    return qd_cli_main(argc, argv);
}
