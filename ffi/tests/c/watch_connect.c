/*
 * Following across the C ABI, run by tests/c_abi.rs (also under valgrind):
 * e2b_commands_connect() on a command that another thread's e2b_commands_run() runs (its
 * output from the start, its exit code, a callback that stops following, an unknown pid), and
 * a directory
 * watch (events in order, typed errors, destroy). Exits 0 when every check holds; prints each
 * failed check to stderr.
 */
#define _POSIX_C_SOURCE 200809L

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "e2b_blocking.h"
#include "check.h"

struct seen {
    char text[256];
    int chunks;
    int stop_after;
};

static int32_t on_out(const char *data, size_t len, void *user_data) {
    struct seen *s = user_data;
    size_t used = strlen(s->text);
    if (used + len < sizeof s->text) {
        memcpy(s->text + used, data, len);
        s->text[used + len] = '\0';
    }
    s->chunks++;
    return (s->stop_after > 0 && s->chunks >= s->stop_after) ? 1 : 0;
}

/* The pid from e2b_commands_list()'s JSON for the command line `cmd`. */
static long pid_of(e2b_sandbox_t sbx, const char *cmd) {
    char *list = NULL;
    if (e2b_commands_list(sbx, &list) != E2B_OK) {
        return -1;
    }
    long pid = -1;
    const char *at = strstr(list, cmd);
    if (at != NULL) {
        /* Each record starts with "pid": before its "cmd". */
        const char *p = at;
        while (p > list && strncmp(p, "\"pid\":", 6) != 0) {
            p--;
        }
        if (strncmp(p, "\"pid\":", 6) == 0) {
            pid = strtol(p + 6, NULL, 10);
        }
    }
    e2b_string_free(list);
    return pid;
}

static void connect_checks(e2b_sandbox_t sbx) {
    char *out = NULL;
    CHECK_CODE(e2b_commands_connect(sbx, 999999999, NULL, &out), E2B_ERR_PROCESS_NOT_FOUND);
    CHECK(out == NULL);
    CHECK(strcmp(e2b_error_code_name(E2B_ERR_PROCESS_NOT_FOUND), "E2B_ERR_PROCESS_NOT_FOUND") == 0);
    CHECK_CODE(e2b_commands_connect(0, 1, NULL, &out), E2B_ERR_NULL_ARG);
}

struct job {
    e2b_sandbox_t sbx;
    e2b_error_code_t code;
    char *json;
};

static void *run_job(void *arg) {
    struct job *j = arg;
    j->code = e2b_commands_run(
        j->sbx, "echo first; sleep 1; echo second >&2; sleep 0.5; exit 4 # follow-me",
        "{\"timeout_ms\": 30000}", NULL, &j->json);
    return NULL;
}

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void follow_checks(e2b_sandbox_t sbx) {
    struct job j = {sbx, E2B_ERR_OTHER, NULL};
    pthread_t t;
    CHECK(pthread_create(&t, NULL, run_job, &j) == 0);
    long pid = -1;
    for (int i = 0; i < 300 && pid < 0; i++) {
        pid = pid_of(sbx, "# follow-me");
        if (pid < 0) {
            sleep_ms(20);
        }
    }
    CHECK(pid > 0);
    struct seen s = {{0}, 0, 0};
    e2b_run_callbacks_t cb = {0};
    cb.on_stdout = on_out;
    cb.on_stderr = on_out;
    cb.user_data = &s;
    char *json = NULL;
    CHECK_CODE(e2b_commands_connect(sbx, (uint32_t)pid, &cb, &json), E2B_OK);
    CHECK(contains(json, "\"stdout\":\"first\\n\""));
    CHECK(contains(json, "\"stderr\":\"second\\n\""));
    CHECK(contains(json, "\"exit_code\":4"));
    CHECK(contains(s.text, "first\n") && contains(s.text, "second\n"));
    e2b_string_free(json);
    pthread_join(t, NULL);
    CHECK(j.code == E2B_OK);
    CHECK(contains(j.json, "\"exit_code\":4"));
    e2b_string_free(j.json);
}

static void stop_following_checks(e2b_sandbox_t sbx) {
    struct job j = {sbx, E2B_ERR_OTHER, NULL};
    pthread_t t;
    CHECK(pthread_create(&t, NULL, run_job, &j) == 0);
    long pid = -1;
    for (int i = 0; i < 300 && pid < 0; i++) {
        pid = pid_of(sbx, "# follow-me");
        if (pid < 0) {
            sleep_ms(20);
        }
    }
    CHECK(pid > 0);
    struct seen s = {{0}, 0, 1};
    e2b_run_callbacks_t cb = {0};
    cb.on_stdout = on_out;
    cb.user_data = &s;
    char *json = NULL;
    CHECK_CODE(e2b_commands_connect(sbx, (uint32_t)pid, &cb, &json), E2B_ERR_CALLBACK);
    CHECK(json == NULL);
    /* Stopping the follower leaves the command running to its end. */
    pthread_join(t, NULL);
    CHECK(j.code == E2B_OK);
    CHECK(contains(j.json, "\"exit_code\":4"));
    e2b_string_free(j.json);
}

static void watch_checks(e2b_sandbox_t sbx) {
    e2b_watch_t w = 7;
    CHECK_CODE(e2b_files_watch_dir(sbx, "nope", 0, &w), E2B_ERR_FILE_NOT_FOUND);
    CHECK(w == 0);
    CHECK_CODE(e2b_files_write(sbx, "plain.txt", (const uint8_t *)"x", 1), E2B_OK);
    CHECK_CODE(e2b_files_watch_dir(sbx, "plain.txt", 0, &w), E2B_ERR_NOT_A_DIRECTORY);
    CHECK_CODE(e2b_files_watch_dir(sbx, NULL, 0, &w), E2B_ERR_NULL_ARG);
    CHECK_CODE(e2b_files_make_dir(sbx, "wd", NULL), E2B_OK);
    CHECK_CODE(e2b_files_watch_dir(sbx, "wd", 1, &w), E2B_OK);
    CHECK(w != 0);
    char *out = NULL;
    /* The removal waits for the creations to be seen: in a new directory, a file made and
     * removed before the directory's own watch is in place is not reported at all. */
    CHECK_CODE(e2b_commands_run(sbx, "mkdir wd/sub && : > wd/sub/f", NULL, NULL, NULL), E2B_OK);
    const char *want[] = {"{\"kind\":\"create\",\"path\":\"sub\",\"dropped\":null}",
                          "{\"kind\":\"create\",\"path\":\"sub/f\",\"dropped\":null}",
                          "{\"kind\":\"remove\",\"path\":\"sub/f\",\"dropped\":null}"};
    for (int i = 0; i < 3; i++) {
        if (i == 2) {
            CHECK_CODE(e2b_commands_run(sbx, "rm wd/sub/f", NULL, NULL, NULL), E2B_OK);
        }
        out = NULL;
        CHECK_CODE(e2b_watch_next(w, 10000, &out), E2B_OK);
        CHECK(out != NULL && strcmp(out, want[i]) == 0);
        if (out == NULL || strcmp(out, want[i]) != 0) {
            fprintf(stderr, "  got %s, want %s\n", out ? out : "(none)", want[i]);
        }
        e2b_string_free(out);
    }
    out = NULL;
    CHECK_CODE(e2b_watch_next(w, 100, &out), E2B_OK);
    CHECK(out == NULL);
    CHECK(e2b_watch_finished(w) == 0);
    CHECK_CODE(e2b_watch_next(w, 0, NULL), E2B_ERR_NULL_ARG);
    CHECK_CODE(e2b_watch_destroy(w), E2B_OK);
    CHECK_CODE(e2b_watch_destroy(w), E2B_ERR_CLOSED);
    CHECK_CODE(e2b_watch_next(w, 0, &out), E2B_ERR_CLOSED);
    CHECK(e2b_watch_finished(w) == 0);
    CHECK_CODE(e2b_watch_destroy(0), E2B_OK);

    /* A watch left alive when its sandbox is destroyed ends with an error, once. */
    CHECK_CODE(e2b_files_watch_dir(sbx, "wd", 0, &w), E2B_OK);
    CHECK_CODE(e2b_sandbox_kill(sbx), E2B_OK);
    e2b_error_code_t code = E2B_OK;
    for (int i = 0; i < 100 && code == E2B_OK && e2b_watch_finished(w) == 0; i++) {
        out = NULL;
        code = e2b_watch_next(w, 100, &out);
        e2b_string_free(out);
    }
    CHECK(code == E2B_ERR_CLOSED);
    CHECK_CODE(e2b_watch_destroy(w), E2B_OK);
}

int main(void) {
    e2b_sandbox_t sbx = 0;
    if (e2b_sandbox_local(NULL, &sbx) != E2B_OK) {
        fprintf(stderr, "no local sandbox: %s\n", e2b_last_error_message());
        return 2;
    }
    connect_checks(sbx);
    follow_checks(sbx);
    stop_following_checks(sbx);
    watch_checks(sbx);
    CHECK_CODE(e2b_sandbox_destroy(sbx), E2B_OK);
    if (failures > 0) {
        fprintf(stderr, "%d of %d checks failed\n", failures, checks);
        return 1;
    }
    printf("watch_connect: all %d checks hold\n", checks);
    return 0;
}
