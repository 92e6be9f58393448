/* fuzz_session.c - libFuzzer harness for the session document reader
 * (sessions/session.c). Any bytes give a session or an error, never a crash
 * or a leak. An error names the document first and is one line. A session
 * prints, the print parses again and prints the same bytes; anything else
 * aborts. Seed corpus: tests/corpus/session/. Built and run by `make fuzz`. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "session.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NAME "fuzz.json"

static void fail(const char *what, const char *a, const char *b)
{
    fprintf(stderr, "fuzz_session: %s\n--- first\n%s\n--- second\n%s\n", what, a ? a : "(null)", b ? b : "(null)");
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    qd_err e = {0};
    /* data is exactly size bytes, not NUL-terminated: reads past it are caught */
    qd_session *s = qd_session_parse((const char *)data, size, NAME, &e);
    if (!s) {
        if (e.code != QD_EINPUT && e.code != QD_EFAIL)
            fail("no session and no error code", e.msg, NULL);
        if (strncmp(e.msg, NAME ": ", strlen(NAME ": ")))
            fail("error does not start with the document's name", e.msg, NULL);
        if (strchr(e.msg, '\n'))
            fail("error message is more than one line", e.msg, NULL);
        return 0;
    }
    char *p1 = qd_session_print(s, &e);
    qd_session_free(s);
    if (!p1)
        return 0; /* out of memory */
    qd_err e2 = {0};
    qd_session *t = qd_session_parse(p1, strlen(p1), NAME, &e2);
    if (!t)
        fail("the printed session does not parse again", p1, e2.msg);
    char *p2 = qd_session_print(t, &e2);
    qd_session_free(t);
    if (p2 && strcmp(p1, p2))
        fail("print -> parse -> print differs", p1, p2);
    free(p1);
    free(p2);
    return 0;
}
