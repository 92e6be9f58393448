/* fuzz_npy.c - libFuzzer harness for the NPY reader (from memory): any bytes
 * give QD_OK or an error, never a crash, leak or an allocation larger than
 * the input can hold. Seed corpus: tests/corpus/npy/. Built and run by
 * `make fuzz`. */
#include <stddef.h>
#include <stdint.h>

#include "npy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    qd_err e = {0};
    qd_tensor t = {0};
    if (qd_npy_read_mem(data, size, "fuzz.npy", &t, &e) == QD_OK) {
        volatile uint8_t s = 0;
        for (size_t i = 0; i < qd_tensor_nbytes(&t); i++)
            s ^= ((const uint8_t *)t.data)[i];
        (void)s;
    }
    qd_tensor_free(&t);
    return 0;
}
