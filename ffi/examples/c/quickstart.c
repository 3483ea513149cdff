/*
 * Quick start for the C ABI: a local sandbox computes a value, streams printed output through a
 * callback, reports a Python exception as data, writes, reads and lists files, runs a shell
 * command, and is destroyed.
 *
 *   cargo build --release -p e2b-blocking-ffi
 *   cc -std=c11 -Wall -Wextra -Iffi/include ffi/examples/c/quickstart.c \
 *      -Ltarget/release -le2b_blocking_ffi -Wl,-rpath,"$PWD/target/release" -o quickstart
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

/* on_stdout and on_stderr of a command: echo each chunk with its stream's name. */
static int32_t print_cmd_stdout(const char *data, size_t len, void *user_data) {
    (void)user_data;
    printf("  cmd stdout: %.*s", (int)len, data);
    return 0;
}

static int32_t print_cmd_stderr(const char *data, size_t len, void *user_data) {
    (void)user_data;
    printf("  cmd stderr: %.*s", (int)len, data);
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

    /* 4. Files: paths are relative to the sandbox root; missing directories are created. */
    const char text[] = "hello from C\n";
    if (e2b_files_write(sbx, "notes/hello.txt", (const uint8_t *)text, strlen(text)) != E2B_OK) {
        report("e2b_files_write");
        goto done;
    }
    uint8_t *data = NULL;
    size_t len = 0;
    if (e2b_files_read(sbx, "notes/hello.txt", &data, &len) != E2B_OK) {
        report("e2b_files_read");
        goto done;
    }
    /* `len` bytes, then a NUL: a text file can be printed as a C string. */
    printf("read %zu bytes: %s", len, (const char *)data);
    e2b_bytes_free(data, len);
    if (e2b_files_list(sbx, "notes", &json) != E2B_OK) {
        report("e2b_files_list");
        goto done;
    }
    printf("listing: %s\n", json);
    e2b_string_free(json);
    json = NULL;

    /* 5. A shell command: output streams to the callbacks; a non-zero exit code is data. */
    e2b_run_callbacks_t streams = {0};
    streams.on_stdout = print_cmd_stdout;
    streams.on_stderr = print_cmd_stderr;
    if (e2b_commands_run(sbx, "echo hi; echo err >&2; exit 3", "{\"timeout_ms\": 30000}",
                         &streams, &json) != E2B_OK) {
        report("e2b_commands_run");
        goto done;
    }
    printf("command: %s\n", json);
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
