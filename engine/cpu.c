/* cpu.c - OpenBLAS kernel detection and the re-exec that fixes it. */
#include "cpu.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <cblas.h>

const char *qd_blas_core(void)
{
    const char *c = openblas_get_corename();
    return c ? c : "unknown";
}

const char *qd_cpu_best_blas_core(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
        __builtin_cpu_supports("avx512cd"))
        return "SkylakeX";
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return "Haswell";
#endif
    return NULL;
}

/* Kernel families weaker than Haswell on x86-64 (OpenBLAS core names). */
static int is_weak(const char *core)
{
    static const char *const weak[] = {"Prescott", "Core2", "Penryn", "Dunnington", "Nehalem",
                                       "Atom", "Opteron", "Opteron_SSE3", "Barcelona", "Bobcat",
                                       "Bulldozer", "Piledriver", "Steamroller", "Excavator",
                                       "Sandybridge", "Katmai", "Coppermine", "Northwood", "unknown"};
    for (size_t i = 0; i < sizeof weak / sizeof weak[0]; i++)
        if (strcasecmp(core, weak[i]) == 0)
            return 1;
    return 0;
}

void qd_cpu_reexec_for_blas(char **argv)
{
    if (getenv("OPENBLAS_CORETYPE") || getenv("QDB_BLAS_REEXEC"))
        return;
    const char *best = qd_cpu_best_blas_core(), *cur = qd_blas_core();
    if (!best || strcasecmp(best, cur) == 0)
        return;
    if (!is_weak(cur) && !(strcmp(best, "SkylakeX") == 0 && strcasecmp(cur, "Haswell") == 0))
        return;
    setenv("OPENBLAS_CORETYPE", best, 1);
    setenv("QDB_BLAS_REEXEC", "1", 1); /* never loop */
    execv("/proc/self/exe", argv);
    unsetenv("OPENBLAS_CORETYPE"); /* exec failed: carry on as we are */
}
