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

/* How capable an OpenBLAS kernel family is on x86-64: 3 = AVX-512,
 * 2 = AVX2+FMA, 1 = AVX, 0 = SSE or unknown. */
static int core_rank(const char *core)
{
    static const char *const avx512[] = {"SkylakeX", "Cooperlake", "SapphireRapids"};
    static const char *const avx2[] = {"Haswell", "Zen", "SkylakeX_noavx512"};
    static const char *const avx[] = {"Sandybridge", "Bulldozer", "Piledriver", "Steamroller", "Excavator"};
    for (size_t i = 0; i < sizeof avx512 / sizeof avx512[0]; i++)
        if (strcasecmp(core, avx512[i]) == 0)
            return 3;
    for (size_t i = 0; i < sizeof avx2 / sizeof avx2[0]; i++)
        if (strcasecmp(core, avx2[i]) == 0)
            return 2;
    for (size_t i = 0; i < sizeof avx / sizeof avx[0]; i++)
        if (strcasecmp(core, avx[i]) == 0)
            return 1;
    return 0;
}

void qd_cpu_reexec_for_blas(char **argv)
{
    if (getenv("QDB_BLAS_REEXEC"))
        return;
    /* QDB_BLAS_CORE is the user's explicit choice; OPENBLAS_CORETYPE alone is
     * not trusted, as machines preset it to kernels weaker than the CPU's. */
    const char *want = getenv("QDB_BLAS_CORE"), *cur = qd_blas_core();
    if (want && *want) {
        if (strcasecmp(want, cur) == 0)
            return;
    } else {
        want = qd_cpu_best_blas_core();
        if (!want || core_rank(cur) >= core_rank(want))
            return;
    }
    const char *old = getenv("OPENBLAS_CORETYPE");
    char *saved = old ? strdup(old) : NULL;
    setenv("OPENBLAS_CORETYPE", want, 1);
    setenv("QDB_BLAS_REEXEC", "1", 1); /* never loop */
    execv("/proc/self/exe", argv);
    /* exec failed: carry on with the kernels we have */
    if (saved)
        setenv("OPENBLAS_CORETYPE", saved, 1);
    else
        unsetenv("OPENBLAS_CORETYPE");
    free(saved);
}
