/* cpu.h - which OpenBLAS kernels run, and getting the fast ones.
 *
 * Debian's OpenBLAS (DYNAMIC_ARCH) can misdetect a CPU under virtualization
 * and pick SSE3 kernels on an AVX-512 machine (5x slower sgemm). The kernel
 * choice is fixed when the library loads, so the only cure is to set
 * OPENBLAS_CORETYPE and start the process again. */
#ifndef QD_CPU_H
#define QD_CPU_H

/* The OpenBLAS kernel family in use, e.g. "SkylakeX", "Haswell", "Prescott". */
const char *qd_blas_core(void);
/* The best kernel family this CPU and OS support, NULL if none is known. */
const char *qd_cpu_best_blas_core(void);
/* When OpenBLAS runs weaker kernels than the CPU supports (misdetected, or
 * forced by an OPENBLAS_CORETYPE preset in the environment), re-execute this
 * program (argv as given) with OPENBLAS_CORETYPE set to the best family.
 * QDB_BLAS_CORE=NAME forces a family instead. Returns only when nothing was
 * done or exec failed; then the program goes on with the kernels it has. */
void qd_cpu_reexec_for_blas(char **argv);

#endif
