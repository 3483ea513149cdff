/*
 * Quick start for the C ABI: a local sandbox computes a value, streams printed output through a
 * callback, reports a Python exception as data, and is destroyed.
 *
 *   cargo build --release --features ffi
 *   cc -std=c11 -Wall -Wextra -Iinclude examples/c/quickstart.c \
 *      -Ltarget/release -le2b_blocking -Wl,-rpath,"$PWD/target/release" -o quickstart
 *   ./quickstart
 *
 * Needs python3 with venv, like every local sandbox (see the README).
 */
#include <stdio.h>
#include <string.h>

#include "e2b_blocking.h"

/* Prints why the last call on this thread failed. */
static void report(const char *what) {
    fprintf(stderr, "%s failed: %s: %s\n", what, e2b_error_code_name(e2b_last_error_code()),
            e2b_last_error_message());
}

/* on_stdout: echo each chunk and count them. `data` is only valid during the call. */
static int32_t print_chunk(const char *data, size_t len, void *user_data) {
    int *chunks = user_data;
    *chunks += 1;
    printf("  stdout: %.*s", (int)len, data);
    return 0; /* non-zero would abandon the run with E2B_ERR_CALLBACK */
}

/* on_error: the Python exception, as JSON. */
static int32_t print_exception(const char *data, size_t len, void *user_data) {
    (void)user_data;
    printf("  exception: %.*s\n", (int)len, data);
    return 0;
}

int main(void) {
    printf("e2b-blocking %s\n", e2b_version());

    e2b_sandbox_t sbx = 0;
    if (e2b_sandbox_local(NULL, &sbx) != E2B_OK) {
        report("e2b_sandbox_local");
        return 1;
    }
    int status = 1;
    char *json = NULL;

    /* 1. Run code and get the whole execution as JSON (the caller frees it). */
    if (e2b_run_code(sbx, "x = 41\nx + 1", &json) != E2B_OK) {
        report("e2b_run_code");
        goto done;
    }
    printf("execution: %s\n", json);
    e2b_string_free(json);
    json = NULL;

    /* 2. Stream output as it is printed, with a deadline for this run. */
    int chunks = 0;
    e2b_run_callbacks_t callbacks = {0};
    callbacks.on_stdout = print_chunk;
    callbacks.on_error = print_exception;
    callbacks.user_data = &chunks;
    if (e2b_run(sbx, "for i in range(3):\n    print(f'line {i}', flush=True)",
                "{\"timeout_ms\": 30000}", &callbacks, NULL) != E2B_OK) {
        report("e2b_run");
        goto done;
    }
    printf("streamed %d chunk(s)\n", chunks);

    /* 3. A Python exception is data in the execution, not an error code. */
    if (e2b_run(sbx, "1 / 0", NULL, &callbacks, &json) != E2B_OK) {
        report("e2b_run");
        goto done;
    }
    printf("raised: %s\n", strstr(json, "ZeroDivisionError") ? "ZeroDivisionError" : "?");
    e2b_string_free(json);
    json = NULL;
    status = 0;

done:
    /* Kills the local server and frees the handle. */
    if (e2b_sandbox_destroy(sbx) != E2B_OK) {
        report("e2b_sandbox_destroy");
        status = 1;
    }
    return status;
}
