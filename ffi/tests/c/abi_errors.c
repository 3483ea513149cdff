/*
 * Error paths across the C ABI, run by tests/c_abi.rs (also under valgrind): NULL and 0
 * arguments, invalid UTF-8, bad options, unsupported backends, callbacks that stop a run, a
 * timeout, files (bad paths, missing files, binary contents) and commands (exit codes,
 * callbacks, timeouts), calls after kill and destroy, concurrent use, and the per-thread last
 * error. Exits 0 when every check holds; prints each failed check to stderr.
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime, nanosleep */

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "e2b_blocking.h"
#include "check.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ----- without a sandbox ----- */

static void *other_thread_errors(void *arg) {
    (void)arg;
    /* A new thread starts with no error, whatever other threads did. */
    CHECK(e2b_last_error_code() == E2B_OK);
    CHECK(strcmp(e2b_last_error_message(), "") == 0);
    e2b_sandbox_t out = 0;
    CHECK_CODE(e2b_sandbox_create("{\"templat\": \"x\"}", &out), E2B_ERR_INVALID_ARGUMENT);
    CHECK(e2b_last_error_code() == E2B_ERR_INVALID_ARGUMENT);
    return NULL;
}

static void without_sandbox(void) {
    CHECK(contains(e2b_version(), "."));
    CHECK(strcmp(e2b_error_code_name(E2B_ERR_TIMEOUT), "E2B_ERR_TIMEOUT") == 0);
    CHECK(strcmp(e2b_error_code_name(12345), "E2B_ERR_OTHER") == 0);

    /* NULL out-parameter. */
    CHECK_CODE(e2b_sandbox_local(NULL, NULL), E2B_ERR_NULL_ARG);
    CHECK(e2b_last_error_code() == E2B_ERR_NULL_ARG);
    CHECK(contains(e2b_last_error_message(), "out is NULL"));

    /* Invalid UTF-8 and bad JSON; the out-parameter is reset to 0. */
    e2b_sandbox_t out = 123;
    CHECK_CODE(e2b_sandbox_local("{\"python\": \"\xff\xfe\"}", &out), E2B_ERR_INVALID_UTF8);
    CHECK(out == 0);
    CHECK_CODE(e2b_sandbox_local("{not json", &out), E2B_ERR_INVALID_ARGUMENT);
    CHECK_CODE(e2b_sandbox_local("{\"pythn\": \"x\"}", &out), E2B_ERR_INVALID_ARGUMENT);
    CHECK(contains(e2b_last_error_message(), "pythn"));
    CHECK_CODE(e2b_sandbox_local("{\"timeouts\": {\"sandbox_start_ms\": -1}}", &out),
               E2B_ERR_INVALID_ARGUMENT);

    /* E2B: options are checked before anything is sent; an unreachable control plane is a
     * transport error (tests/e2b_local.rs drives a scripted one end to end). */
    out = 123;
    CHECK_CODE(e2b_sandbox_create("{\"lifetime_ms\": \"long\"}", &out), E2B_ERR_INVALID_ARGUMENT);
    CHECK(out == 0);
    out = 123;
    CHECK_CODE(e2b_sandbox_create("{\"api_key\": \"e2b_secret\", \"api_url\": \"http://127.0.0.1:9\"}",
                                  &out),
               E2B_ERR_TRANSPORT);
    CHECK(out == 0);
    CHECK(!contains(e2b_last_error_message(), "e2b_secret"));

    /* An existing Jupyter server: arguments are checked before anything is sent, and an
     * unreachable server is a transport error (tests/ffi/connect_jupyter.c drives a real one). */
    CHECK_CODE(e2b_sandbox_connect_jupyter(NULL, "token", NULL, &out), E2B_ERR_NULL_ARG);
    CHECK(contains(e2b_last_error_message(), "url is NULL"));
    CHECK_CODE(e2b_sandbox_connect_jupyter("http://127.0.0.1:9", NULL, NULL, NULL),
               E2B_ERR_NULL_ARG);
    CHECK_CODE(e2b_sandbox_connect_jupyter("http://127.0.0.1:9", "\xff", NULL, &out),
               E2B_ERR_INVALID_UTF8);
    CHECK_CODE(e2b_sandbox_connect_jupyter("127.0.0.1:8888", NULL, NULL, &out),
               E2B_ERR_INVALID_ARGUMENT);
    CHECK(contains(e2b_last_error_message(), "http://"));
    CHECK_CODE(e2b_sandbox_connect_jupyter("http://127.0.0.1:9/?token=x", NULL, NULL, &out),
               E2B_ERR_INVALID_ARGUMENT);
    CHECK_CODE(e2b_sandbox_connect_jupyter("http://127.0.0.1:9", NULL, "{\"python\": \"x\"}", &out),
               E2B_ERR_INVALID_ARGUMENT);
    out = 123;
    e2b_error_code_t unreachable = e2b_sandbox_connect_jupyter(
        "http://127.0.0.1:9", "token", "{\"timeouts\": {\"connect_ms\": 2000}}", &out);
    CHECK(unreachable == E2B_ERR_TRANSPORT || unreachable == E2B_ERR_TIMEOUT);
    CHECK(out == 0);

    /* Files and commands with bad arguments or handles. */
    uint8_t *data = (uint8_t *)"not touched";
    size_t data_len = 99;
    CHECK_CODE(e2b_files_read(987654321, "a.txt", &data, &data_len), E2B_ERR_CLOSED);
    CHECK(data == NULL && data_len == 0);
    CHECK_CODE(e2b_files_read(0, "a.txt", &data, &data_len), E2B_ERR_NULL_ARG);
    CHECK_CODE(e2b_files_read(987654321, "a.txt", NULL, &data_len), E2B_ERR_NULL_ARG);
    CHECK_CODE(e2b_files_read(987654321, "a.txt", &data, NULL), E2B_ERR_NULL_ARG);
    CHECK_CODE(e2b_files_write(987654321, "a.txt", NULL, 1), E2B_ERR_NULL_ARG);
    CHECK_CODE(e2b_files_list(987654321, NULL, NULL), E2B_ERR_NULL_ARG);
    CHECK_CODE(e2b_files_exists(987654321, "a", NULL), E2B_ERR_NULL_ARG);
    CHECK_CODE(e2b_files_remove(987654321, "a"), E2B_ERR_CLOSED);
    CHECK_CODE(e2b_files_rename(987654321, "a", NULL), E2B_ERR_NULL_ARG);
    CHECK_CODE(e2b_files_make_dir(987654321, "d", NULL), E2B_ERR_CLOSED);
    CHECK_CODE(e2b_commands_run(987654321, "true", NULL, NULL, NULL), E2B_ERR_CLOSED);
    CHECK_CODE(e2b_commands_run(987654321, NULL, NULL, NULL, NULL), E2B_ERR_NULL_ARG);
    e2b_bytes_free(NULL, 0);

    /* 0 and made-up handles. */
    char *json = (char *)"not touched";
    CHECK_CODE(e2b_run_code(0, "1", &json), E2B_ERR_NULL_ARG);
    CHECK(json == NULL);
    CHECK_CODE(e2b_run_code(987654321, "1", &json), E2B_ERR_CLOSED);
    CHECK(json == NULL);
    CHECK_CODE(e2b_run(987654321, "1", NULL, NULL, NULL), E2B_ERR_CLOSED);
    CHECK_CODE(e2b_sandbox_kill(987654321), E2B_ERR_CLOSED);
    CHECK_CODE(e2b_sandbox_destroy(0), E2B_OK);
    CHECK_CODE(e2b_sandbox_destroy(987654321), E2B_ERR_CLOSED);
    e2b_string_free(NULL);

    /* The last error stays until the next fallible call, and copies like snprintf. */
    CHECK_CODE(e2b_sandbox_kill(987654321), E2B_ERR_CLOSED);
    size_t len = e2b_last_error_message_copy(NULL, 0);
    CHECK(len == strlen(e2b_last_error_message()) && len > 10);
    char small[8];
    memset(small, 'x', sizeof small);
    CHECK(e2b_last_error_message_copy(small, sizeof small) == len);
    CHECK(strlen(small) == sizeof small - 1);
    CHECK(strncmp(small, e2b_last_error_message(), sizeof small - 1) == 0);

    /* Each thread has its own last error. */
    pthread_t t;
    CHECK(pthread_create(&t, NULL, other_thread_errors, NULL) == 0);
    pthread_join(t, NULL);
    CHECK(e2b_last_error_code() == E2B_ERR_CLOSED);
}

/* ----- with a sandbox ----- */

struct stop_after {
    int calls;      /* how many times the callback ran */
    int stop_at;    /* return non-zero on this call (1-based) */
    int returned;   /* what to return then */
    size_t last_len;
    int last_terminated; /* data[len] == '\0' */
    char last[256];
};

static int32_t stop_after_cb(const char *data, size_t len, void *user_data) {
    struct stop_after *s = user_data;
    s->calls++;
    s->last_len = len;
    s->last_terminated = data[len] == '\0';
    size_t n = len < sizeof s->last - 1 ? len : sizeof s->last - 1;
    memcpy(s->last, data, n);
    s->last[n] = '\0';
    return s->calls == s->stop_at ? s->returned : 0;
}

struct run_args {
    e2b_sandbox_t sbx;
    const char *code;
    int code_out;
    double seconds;
    char *json;
};

static void *run_in_thread(void *arg) {
    struct run_args *a = arg;
    double t0 = now();
    a->code_out = e2b_run_code(a->sbx, a->code, &a->json);
    a->seconds = now() - t0;
    return NULL;
}

/* ----- files and commands on a live sandbox ----- */

static void files_checks(e2b_sandbox_t sbx) {
    uint8_t *data = NULL;
    size_t len = 0;
    char *json = NULL;
    int flag = -1;

    /* Bad paths: NULL, not UTF-8. */
    CHECK_CODE(e2b_files_read(sbx, NULL, &data, &len), E2B_ERR_NULL_ARG);
    CHECK(contains(e2b_last_error_message(), "path is NULL"));
    CHECK_CODE(e2b_files_read(sbx, "bad\xc3\x28.txt", &data, &len), E2B_ERR_INVALID_UTF8);
    CHECK_CODE(e2b_files_write(sbx, "bad\xff", (const uint8_t *)"x", 1), E2B_ERR_INVALID_UTF8);
    CHECK_CODE(e2b_files_list(sbx, "\xfe", &json), E2B_ERR_INVALID_UTF8);
    CHECK(json == NULL);
    /* Paths mean what they mean to code: `..` above the root and absolute paths elsewhere are
       the sandbox's (in the isolated sandbox its own, never the host's); the root, and what
       holds it, cannot be removed or replaced. */
    CHECK_CODE(e2b_files_read(sbx, "../no-such/passwd", &data, &len), E2B_ERR_FILE_NOT_FOUND);
    CHECK(data == NULL && len == 0);
    CHECK(contains(e2b_last_error_message(), "/no-such/passwd"));
    char tmp_path[64];
    snprintf(tmp_path, sizeof tmp_path, "/tmp/e2b-ffi-%ld/x.txt", (long)getpid());
    CHECK_CODE(e2b_files_write(sbx, tmp_path, (const uint8_t *)"tmp", 3), E2B_OK);
    CHECK_CODE(e2b_files_read(sbx, tmp_path, &data, &len), E2B_OK);
    CHECK(data != NULL && len == 3 && memcmp(data, "tmp", 3) == 0);
    e2b_bytes_free(data, len);
    data = NULL;
    *strrchr(tmp_path, '/') = 0;
    CHECK_CODE(e2b_files_remove(sbx, tmp_path), E2B_OK);
    CHECK_CODE(e2b_files_exists(sbx, tmp_path, &flag), E2B_OK);
    CHECK(flag == 0);
    CHECK_CODE(e2b_files_remove(sbx, "."), E2B_ERR_INVALID_ARGUMENT);
    CHECK_CODE(e2b_files_remove(sbx, ".."), E2B_ERR_INVALID_ARGUMENT);
    CHECK_CODE(e2b_files_rename(sbx, "a", ".."), E2B_ERR_INVALID_ARGUMENT);

    /* Missing files. */
    data = (uint8_t *)"not touched";
    len = 99;
    CHECK_CODE(e2b_files_read(sbx, "no/such.txt", &data, &len), E2B_ERR_FILE_NOT_FOUND);
    CHECK(data == NULL && len == 0);
    CHECK(contains(e2b_last_error_message(), "no/such.txt"));
    CHECK_CODE(e2b_files_list(sbx, "no-such-dir", &json), E2B_ERR_FILE_NOT_FOUND);
    CHECK_CODE(e2b_files_remove(sbx, "no-such-file"), E2B_OK); /* as E2B's: already gone */
    CHECK_CODE(e2b_files_rename(sbx, "no-such-file", "x"), E2B_ERR_FILE_NOT_FOUND);
    CHECK_CODE(e2b_files_exists(sbx, "no-such-file", &flag), E2B_OK);
    CHECK(flag == 0);

    /* Binary contents with NULs survive the round trip, with a NUL after them. */
    const uint8_t bin[] = {0, 1, 2, 0xff, 0, 'z'};
    CHECK_CODE(e2b_files_write(sbx, "ffi/bin/x.bin", bin, sizeof bin), E2B_OK);
    CHECK_CODE(e2b_files_read(sbx, "./ffi/bin/../bin/x.bin", &data, &len), E2B_OK);
    CHECK(data != NULL && len == sizeof bin && memcmp(data, bin, sizeof bin) == 0);
    CHECK(data != NULL && data[len] == 0);
    e2b_bytes_free(data, len);
    data = NULL;

    /* An empty file is a real, empty buffer; NULL data with length 0 writes one. */
    CHECK_CODE(e2b_files_write(sbx, "ffi/empty", NULL, 0), E2B_OK);
    CHECK_CODE(e2b_files_read(sbx, "ffi/empty", &data, &len), E2B_OK);
    CHECK(data != NULL && len == 0 && data[0] == 0);
    e2b_bytes_free(data, len);
    data = NULL;

    /* Files and directories in the wrong place. */
    CHECK_CODE(e2b_files_read(sbx, "ffi/bin", &data, &len), E2B_ERR_IS_A_DIRECTORY);
    CHECK(data == NULL);
    CHECK_CODE(e2b_files_list(sbx, "ffi/empty", &json), E2B_ERR_NOT_A_DIRECTORY);
    CHECK_CODE(e2b_files_make_dir(sbx, "ffi/empty", &flag), E2B_ERR_NOT_A_DIRECTORY);
    CHECK_CODE(e2b_files_write(sbx, "ffi/empty/under-a-file", bin, 1), E2B_ERR_NOT_A_DIRECTORY);

    /* Directories, exists, rename, list, remove. */
    CHECK_CODE(e2b_files_make_dir(sbx, "ffi/d1/d2", &flag), E2B_OK);
    CHECK(flag == 1);
    CHECK_CODE(e2b_files_make_dir(sbx, "ffi/d1/d2", &flag), E2B_OK);
    CHECK(flag == 0);
    CHECK_CODE(e2b_files_exists(sbx, "ffi/d1/d2", &flag), E2B_OK);
    CHECK(flag == 1);
    CHECK_CODE(e2b_files_rename(sbx, "ffi/bin/x.bin", "ffi/moved/y.bin"), E2B_OK);
    CHECK_CODE(e2b_files_exists(sbx, "ffi/bin/x.bin", &flag), E2B_OK);
    CHECK(flag == 0);
    CHECK_CODE(e2b_files_list(sbx, "ffi", &json), E2B_OK);
    CHECK(json != NULL && json[0] == '[');
    CHECK(contains(json, "{\"name\":\"bin\",\"path\":\"ffi/bin\",\"type\":\"dir\",\"size\":null"));
    CHECK(contains(json, "{\"name\":\"empty\",\"path\":\"ffi/empty\",\"type\":\"file\",\"size\":0,"
                         "\"modified\":"));
    CHECK(contains(json, "\"name\":\"moved\""));
    e2b_string_free(json);
    json = NULL;
    CHECK_CODE(e2b_files_list(sbx, "ffi/moved", &json), E2B_OK);
    CHECK(contains(json, "\"path\":\"ffi/moved/y.bin\",\"type\":\"file\",\"size\":6,"));
    e2b_string_free(json);
    json = NULL;
    CHECK_CODE(e2b_files_remove(sbx, "ffi"), E2B_OK);
    CHECK_CODE(e2b_files_exists(sbx, "ffi", &flag), E2B_OK);
    CHECK(flag == 0);
}

static int32_t count_cb(const char *data, size_t len, void *user_data) {
    (void)data;
    (void)len;
    *(int *)user_data += 1;
    return 0;
}

struct command_args {
    e2b_sandbox_t sbx;
    const char *cmd;
    int code_out;
    char *json;
};

static void *command_in_thread(void *arg) {
    struct command_args *a = arg;
    a->code_out = e2b_commands_run(a->sbx, a->cmd, NULL, NULL, &a->json);
    return NULL;
}

static void commands_checks(e2b_sandbox_t sbx) {
    char *json = (char *)"not touched";

    /* Bad arguments. */
    CHECK_CODE(e2b_commands_run(sbx, NULL, NULL, NULL, &json), E2B_ERR_NULL_ARG);
    CHECK(json == NULL);
    CHECK(contains(e2b_last_error_message(), "cmd is NULL"));
    CHECK_CODE(e2b_commands_run(sbx, "echo \xff", NULL, NULL, &json), E2B_ERR_INVALID_UTF8);
    CHECK_CODE(e2b_commands_run(sbx, "true", "{\"timeout\": 1}", NULL, &json),
               E2B_ERR_INVALID_ARGUMENT);
    CHECK_CODE(e2b_commands_run(sbx, "true", "{\"envs\": {\"A=B\": \"x\"}}", NULL, &json),
               E2B_ERR_INVALID_ARGUMENT);

    /* A non-zero exit code is data; stdout and stderr stay apart. */
    CHECK_CODE(e2b_commands_run(sbx, "echo hi; echo err >&2; exit 3", NULL, NULL, &json), E2B_OK);
    CHECK(contains(json, "\"stdout\":\"hi\\n\""));
    CHECK(contains(json, "\"stderr\":\"err\\n\""));
    CHECK(contains(json, "\"exit_code\":3"));
    e2b_string_free(json);
    json = NULL;
    CHECK_CODE(e2b_commands_run(sbx, "exit 0", NULL, NULL, NULL), E2B_OK);

    /* The sandbox's env vars, the command's own, and its cwd. */
    CHECK_CODE(e2b_files_make_dir(sbx, "cmd-dir", NULL), E2B_OK);
    CHECK_CODE(e2b_commands_run(sbx, "echo \"$E2B_FFI_TEST $MINE\"; basename \"$PWD\"",
                                "{\"cwd\": \"cmd-dir\", \"envs\": {\"MINE\": \"m\"}}", NULL,
                                &json),
               E2B_OK);
    CHECK(contains(json, "\"stdout\":\"yes m\\ncmd-dir\\n\""));
    e2b_string_free(json);
    json = NULL;
    /* Stdin: the text reaches the command, then EOF. */
    CHECK_CODE(e2b_commands_run(sbx, "cat; echo end", "{\"stdin\": \"in 1\\nin 2\\n\"}", NULL,
                                &json),
               E2B_OK);
    CHECK(contains(json, "\"stdout\":\"in 1\\nin 2\\nend\\n\""));
    CHECK(contains(json, "\"exit_code\":0"));
    e2b_string_free(json);
    json = NULL;
    /* The result keeps the tail of each stream and counts the rest, or keeps none of it. */
    CHECK_CODE(e2b_commands_run(sbx, "echo 0123456789", "{\"max_output\": 4}", NULL, &json),
               E2B_OK);
    CHECK(contains(json, "\"stdout\":\"789\\n\""));
    CHECK(contains(json, "\"stdout_bytes\":7"));
    e2b_string_free(json);
    CHECK_CODE(e2b_commands_run(sbx, "echo hi", "{\"retain_output\": false}", NULL, &json),
               E2B_OK);
    CHECK(contains(json, "\"stdout\":\"\"") && contains(json, "\"stdout_bytes\":3"));
    e2b_string_free(json);
    json = NULL;
    CHECK_CODE(e2b_commands_run(sbx, "true", "{\"cwd\": \"no-such-dir\"}", NULL, &json),
               E2B_ERR_FILE_NOT_FOUND);
    CHECK(json == NULL);

    /* Callbacks see each stream; one that returns non-zero kills the command. */
    int out_calls = 0, err_calls = 0;
    struct stop_after stop = {0, 1, 5, 0, 0, {0}};
    e2b_run_callbacks_t cb = {0};
    cb.on_stdout = count_cb;
    cb.user_data = &out_calls;
    CHECK_CODE(e2b_commands_run(sbx, "echo a", NULL, &cb, NULL), E2B_OK);
    CHECK(out_calls >= 1);
    cb.on_stdout = NULL;
    cb.on_stderr = count_cb;
    cb.user_data = &err_calls;
    CHECK_CODE(e2b_commands_run(sbx, "echo b >&2", NULL, &cb, NULL), E2B_OK);
    CHECK(err_calls >= 1);
    cb.on_stderr = stop_after_cb;
    cb.user_data = &stop;
    double t0 = now();
    json = (char *)"not touched";
    CHECK_CODE(e2b_commands_run(sbx, "echo first >&2; sleep 60; echo never", NULL, &cb, &json),
               E2B_ERR_CALLBACK);
    CHECK(now() - t0 < 30.0);
    CHECK(json == NULL);
    CHECK(stop.calls == 1 && contains(stop.last, "first") && stop.last_terminated);
    CHECK(contains(e2b_last_error_message(), "on_stderr callback returned 5"));

    /* A timeout kills the command; the next one runs. */
    t0 = now();
    CHECK_CODE(e2b_commands_run(sbx, "sleep 60", "{\"timeout_ms\": 500}", NULL, &json),
               E2B_ERR_TIMEOUT);
    CHECK(now() - t0 < 30.0);
    CHECK(json == NULL);
    CHECK_CODE(e2b_commands_run(sbx, "echo after", "{\"timeout_ms\": null}", NULL, &json), E2B_OK);
    CHECK(contains(json, "\"stdout\":\"after\\n\""));
    e2b_string_free(json);
    json = NULL;

    /* Two commands at once on one handle, from two threads. */
    struct command_args a = {sbx, "sleep 0.5; echo slow", -1, NULL};
    struct command_args b = {sbx, "echo quick", -1, NULL};
    pthread_t ta, tb;
    CHECK(pthread_create(&ta, NULL, command_in_thread, &a) == 0);
    CHECK(pthread_create(&tb, NULL, command_in_thread, &b) == 0);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    CHECK(a.code_out == E2B_OK && contains(a.json, "slow"));
    CHECK(b.code_out == E2B_OK && contains(b.json, "quick"));
    e2b_string_free(a.json);
    e2b_string_free(b.json);

    /* A running command is listed by pid; killing it ends its run with exit code -9. */
    struct command_args c = {sbx, "sleep 30 # listed", -1, NULL};
    pthread_t tc;
    CHECK(pthread_create(&tc, NULL, command_in_thread, &c) == 0);
    long pid = 0;
    for (int i = 0; i < 200 && pid == 0; i++) {
        char *list = NULL;
        CHECK_CODE(e2b_commands_list(sbx, &list), E2B_OK);
        const char *at = list ? strstr(list, "\"cmd\":\"sleep 30 # listed\"") : NULL;
        if (at != NULL) {
            /* Records are objects of the list; find this one's "pid". */
            const char *start = at;
            while (start > list && *start != '{') {
                start--;
            }
            const char *p = strstr(start, "\"pid\":");
            if (p != NULL) {
                pid = strtol(p + 6, NULL, 10);
            }
        }
        e2b_string_free(list);
        if (pid == 0) {
            sleep_ms(50);
        }
    }
    CHECK(pid > 0);
    int killed = -1;
    CHECK_CODE(e2b_commands_kill(sbx, (uint32_t)pid, &killed), E2B_OK);
    CHECK(killed == 1);
    pthread_join(tc, NULL);
    CHECK(c.code_out == E2B_OK && contains(c.json, "\"exit_code\":-9"));
    e2b_string_free(c.json);
    CHECK_CODE(e2b_commands_kill(sbx, (uint32_t)pid, &killed), E2B_OK);
    CHECK(killed == 0);
    CHECK_CODE(e2b_commands_list(sbx, NULL), E2B_ERR_NULL_ARG);
}

/* Every file and command function on a handle that is killed or destroyed. */
static void closed_checks(e2b_sandbox_t sbx) {
    uint8_t *data = (uint8_t *)"not touched";
    size_t len = 99;
    char *json = (char *)"not touched";
    int flag = -1;
    CHECK_CODE(e2b_files_read(sbx, "a", &data, &len), E2B_ERR_CLOSED);
    CHECK(data == NULL && len == 0);
    CHECK_CODE(e2b_files_write(sbx, "a", (const uint8_t *)"x", 1), E2B_ERR_CLOSED);
    CHECK_CODE(e2b_files_list(sbx, ".", &json), E2B_ERR_CLOSED);
    CHECK(json == NULL);
    CHECK_CODE(e2b_files_exists(sbx, "a", &flag), E2B_ERR_CLOSED);
    CHECK(flag == 0);
    CHECK_CODE(e2b_files_remove(sbx, "a"), E2B_ERR_CLOSED);
    CHECK_CODE(e2b_files_rename(sbx, "a", "b"), E2B_ERR_CLOSED);
    CHECK_CODE(e2b_files_make_dir(sbx, "d", &flag), E2B_ERR_CLOSED);
    json = (char *)"not touched";
    CHECK_CODE(e2b_commands_run(sbx, "true", NULL, NULL, &json), E2B_ERR_CLOSED);
    CHECK(json == NULL);
}

static void with_sandbox(void) {
    e2b_sandbox_t sbx = 0;
    CHECK_CODE(e2b_sandbox_local("{\"envs\": {\"E2B_FFI_TEST\": \"yes\"}, "
                                 "\"timeouts\": {\"execution_ms\": 120000}}",
                                 &sbx),
               E2B_OK);
    if (sbx == 0) {
        return;
    }
    CHECK(e2b_last_error_code() == E2B_OK && strcmp(e2b_last_error_message(), "") == 0);

    char *s = NULL;
    CHECK_CODE(e2b_sandbox_id(sbx, &s), E2B_OK);
    CHECK(contains(s, "local-"));
    e2b_string_free(s);
    CHECK_CODE(e2b_sandbox_jupyter_url(sbx, &s), E2B_OK);
    /* Isolated (the default on Linux) it is reached through a Unix socket, else over TCP. */
    CHECK(contains(s, "http+unix://%2F") || contains(s, "http://127.0.0.1:"));
    e2b_string_free(s);
    CHECK_CODE(e2b_sandbox_id(sbx, NULL), E2B_ERR_NULL_ARG);

    /* A port of the sandbox as seen from here: a 127.0.0.1 address (a forward when isolated),
     * kept until the host handle is released. */
    e2b_host_t host = 99;
    s = (char *)"not touched";
    CHECK_CODE(e2b_sandbox_get_host(sbx, 8000, &s, &host), E2B_OK);
    CHECK(s != NULL && contains(s, "127.0.0.1:") && host != 0);
    e2b_string_free(s);
    e2b_host_release(host);
    e2b_host_release(host);
    e2b_host_release(0);
    CHECK_CODE(e2b_sandbox_get_host(sbx, 8000, NULL, &host), E2B_ERR_NULL_ARG);
    CHECK(host == 0);

    /* Bad arguments to run. */
    char *json = NULL;
    CHECK_CODE(e2b_run_code(sbx, NULL, &json), E2B_ERR_NULL_ARG);
    CHECK(contains(e2b_last_error_message(), "code is NULL"));
    CHECK_CODE(e2b_run_code(sbx, "print('\xc3\x28')", &json), E2B_ERR_INVALID_UTF8);
    CHECK(json == NULL);
    CHECK_CODE(e2b_run_code(sbx, "1", NULL), E2B_ERR_NULL_ARG);
    CHECK_CODE(e2b_run(sbx, "1", "{\"timeout\": 5}", NULL, NULL), E2B_ERR_INVALID_ARGUMENT);
    CHECK_CODE(e2b_run(sbx, "1", "[]", NULL, NULL), E2B_ERR_INVALID_ARGUMENT);

    /* The sandbox's env vars, and a run's own. */
    CHECK_CODE(e2b_run_code(sbx, "import os; os.environ['E2B_FFI_TEST']", &json), E2B_OK);
    CHECK(contains(json, "\"text\":\"'yes'\""));
    e2b_string_free(json);
    CHECK_CODE(e2b_run(sbx, "os.environ['ONLY_HERE']", "{\"envs\": {\"ONLY_HERE\": \"1\"}}",
                       NULL, &json),
               E2B_OK);
    CHECK(contains(json, "\"text\":\"'1'\""));
    e2b_string_free(json);

    /* The execution keeps the tail of each stream and counts the rest (one write: print()
     * writes its newline apart, and a slow kernel may send it apart). */
    CHECK_CODE(e2b_run(sbx, "import sys; sys.stdout.write('0123456789\\n')",
                       "{\"max_output\": 4}", NULL, &json),
               E2B_OK);
    CHECK(contains(json, "\"stdout\":[\"789\\n\"]"));
    CHECK(contains(json, "\"stdout_bytes\":7"));
    e2b_string_free(json);

    /* A callback that returns non-zero stops the run at once and the kernel is usable. */
    struct stop_after stop = {0, 1, 7, 0, 0, {0}};
    e2b_run_callbacks_t cb = {0};
    cb.on_stdout = stop_after_cb;
    cb.user_data = &stop;
    double t0 = now();
    json = (char *)"not touched";
    CHECK_CODE(e2b_run(sbx, "import time\nprint('first', flush=True)\ntime.sleep(60)\nprint('x')",
                       NULL, &cb, &json),
               E2B_ERR_CALLBACK);
    CHECK(now() - t0 < 30.0);
    CHECK(json == NULL);
    CHECK(stop.calls == 1);
    CHECK(contains(stop.last, "first"));
    CHECK(contains(e2b_last_error_message(), "on_stdout callback returned 7"));
    CHECK_CODE(e2b_run_code(sbx, "1 + 1", &json), E2B_OK);
    CHECK(contains(json, "\"text\":\"2\""));
    e2b_string_free(json);

    /* Every kind of callback gets its data; NUL bytes in output are passed with their length. */
    struct stop_after out = {0, 0, 0, 0, 0, {0}}, err = out, res = out, exc = out;
    e2b_run_callbacks_t all = {0};
    all.on_stdout = stop_after_cb;
    all.user_data = &out;
    CHECK_CODE(e2b_run(sbx, "print('a\\0b')", NULL, &all, NULL), E2B_OK);
    CHECK(out.calls == 1 && out.last_len == 4 && out.last_terminated);
    all.on_stdout = NULL;
    all.on_stderr = stop_after_cb;
    all.user_data = &err;
    CHECK_CODE(e2b_run(sbx, "import sys; sys.stderr.write('oops\\n')", NULL, &all, NULL), E2B_OK);
    CHECK(err.calls >= 1 && contains(err.last, "oops"));
    all.on_stderr = NULL;
    all.on_result = stop_after_cb;
    all.user_data = &res;
    CHECK_CODE(e2b_run(sbx, "6 * 7", NULL, &all, NULL), E2B_OK);
    CHECK(res.calls == 1 && contains(res.last, "\"text\":\"42\"") &&
          contains(res.last, "\"is_main_result\":true"));
    all.on_result = NULL;
    all.on_error = stop_after_cb;
    all.user_data = &exc;
    exc.stop_at = 1;
    exc.returned = -1;
    CHECK_CODE(e2b_run(sbx, "raise ValueError('bad')", NULL, &all, NULL), E2B_ERR_CALLBACK);
    CHECK(exc.calls == 1 && contains(exc.last, "\"name\":\"ValueError\""));
    CHECK(contains(e2b_last_error_message(), "on_error callback returned -1"));

    /* A Python exception without an on_error callback is data, not an error code. */
    CHECK_CODE(e2b_run_code(sbx, "1 / 0", &json), E2B_OK);
    CHECK(contains(json, "ZeroDivisionError"));
    e2b_string_free(json);

    /* A timeout interrupts the kernel; the next run works. */
    t0 = now();
    CHECK_CODE(e2b_run(sbx, "import time; time.sleep(60)", "{\"timeout_ms\": 500}", NULL, &json),
               E2B_ERR_TIMEOUT);
    CHECK(now() - t0 < 30.0);
    CHECK(json == NULL);
    CHECK_CODE(e2b_run_code(sbx, "'after timeout'", &json), E2B_OK);
    CHECK(contains(json, "after timeout"));
    e2b_string_free(json);

    /* Two threads on one handle at once. */
    struct run_args a = {sbx, "import time; time.sleep(0.2); 'a'", -1, 0, NULL};
    struct run_args b = {sbx, "'b'", -1, 0, NULL};
    pthread_t ta, tb;
    CHECK(pthread_create(&ta, NULL, run_in_thread, &a) == 0);
    CHECK(pthread_create(&tb, NULL, run_in_thread, &b) == 0);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    CHECK(a.code_out == E2B_OK && contains(a.json, "'a'"));
    CHECK(b.code_out == E2B_OK && contains(b.json, "'b'"));
    e2b_string_free(a.json);
    e2b_string_free(b.json);

    files_checks(sbx);
    commands_checks(sbx);
    CHECK(e2b_sandbox_is_running(sbx) == 1);

    /* Destroying a handle another thread is running on ends that run at once. */
    struct run_args slow = {sbx, "import time; time.sleep(60)", -1, 0, NULL};
    pthread_t ts;
    CHECK(pthread_create(&ts, NULL, run_in_thread, &slow) == 0);
    sleep_ms(1000);
    e2b_error_code_t destroyed = e2b_sandbox_destroy(sbx);
    CHECK(destroyed == E2B_OK);
    pthread_join(ts, NULL);
    CHECK(slow.code_out == E2B_ERR_CLOSED);
    CHECK(slow.seconds < 30.0);
    CHECK(slow.json == NULL);

    /* The handle is retired for good. */
    CHECK_CODE(e2b_run_code(sbx, "1", &json), E2B_ERR_CLOSED);
    CHECK(contains(e2b_last_error_message(), "not live"));
    closed_checks(sbx);
    CHECK(contains(e2b_last_error_message(), "not live"));
    CHECK_CODE(e2b_sandbox_destroy(sbx), E2B_ERR_CLOSED);
}

static void kill_then_destroy(void) {
    e2b_sandbox_t sbx = 0;
    CHECK_CODE(e2b_sandbox_local("", &sbx), E2B_OK);
    if (sbx == 0) {
        return;
    }
    CHECK(e2b_sandbox_is_running(sbx) == 1);
    CHECK_CODE(e2b_sandbox_kill(sbx), E2B_OK);
    CHECK(e2b_sandbox_is_running(sbx) == 0);
    CHECK_CODE(e2b_sandbox_kill(sbx), E2B_OK); /* idempotent */
    char *json = NULL;
    CHECK_CODE(e2b_run_code(sbx, "1", &json), E2B_ERR_CLOSED);
    CHECK(json == NULL);
    closed_checks(sbx); /* killed: the handle is live, the sandbox is not */
    char *id = NULL;
    CHECK_CODE(e2b_sandbox_id(sbx, &id), E2B_OK); /* still readable until destroyed */
    e2b_string_free(id);
    CHECK_CODE(e2b_sandbox_destroy(sbx), E2B_OK);
    CHECK(e2b_sandbox_is_running(sbx) == 0);
    CHECK(e2b_sandbox_is_running(0) == 0);
    CHECK_CODE(e2b_sandbox_kill(sbx), E2B_ERR_CLOSED);
}

int main(void) {
    without_sandbox();
    with_sandbox();
    kill_then_destroy();
    if (failures != 0) {
        fprintf(stderr, "abi_errors: %d of %d checks failed\n", failures, checks);
        return 1;
    }
    printf("abi_errors: all %d checks hold\n", checks);
    return 0;
}
