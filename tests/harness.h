/* harness.h - the tiny test harness: ok(), near(), and a summary line.
 * Each test program prints "N passed, N failed" last and exits 1 on failure. */
#ifndef QD_HARNESS_H
#define QD_HARNESS_H

#include <math.h>
#include <stdio.h>

static int th_pass, th_fail;

/* TH_LIGHT is 1 in sanitizer builds: tests run the same checks on less work. */
#if defined(__SANITIZE_ADDRESS__)
#define TH_LIGHT 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TH_LIGHT 1
#endif
#endif
#ifndef TH_LIGHT
#define TH_LIGHT 0
#endif

#define ok(cond, ...)                                                           \
    do {                                                                        \
        if (cond) {                                                             \
            th_pass++;                                                          \
        } else {                                                                \
            th_fail++;                                                          \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                \
            fprintf(stderr, __VA_ARGS__);                                       \
            fputc('\n', stderr);                                                \
        }                                                                       \
    } while (0)

/* |a - b| <= atol + rtol * |b| */
#define near(a, b, atol, rtol, what)                                            \
    ok(fabs((double)(a) - (double)(b)) <= (atol) + (rtol) * fabs((double)(b)),  \
       "%s: %.9g vs %.9g", (what), (double)(a), (double)(b))

static inline int th_summary(void)
{
    printf("%d passed, %d failed\n", th_pass, th_fail);
    return th_fail ? 1 : 0;
}

#endif
