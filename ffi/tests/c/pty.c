/*
 * Terminals across the C ABI, run by tests/c_abi.rs (also under valgrind): a shell with
 * options (size, env var), typed input and its output, resize, the exit status at the end, a
 * terminal left running by destroy and attached again by name, kill, and the error codes.
 * Exits 0 when every check holds; prints each failed check to stderr.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "e2b_blocking.h"
#include "check.h"

/* What a terminal printed so far, as the JSON-escaped text of its output events. */
struct screen {
    char text[65536];
    char end[256];
};

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Takes one event; returns 0 once the terminal has ended. */
static int take(struct screen *s, const char *json) {
    const char *key = "\"text\":\"";
    const char *at = strstr(json, key);
    if (strstr(json, "\"kind\":\"end\"") != NULL) {
        snprintf(s->end, sizeof s->end, "%s", json);
        return 0;
    }
    if (strstr(json, "\"kind\":\"output\"") != NULL && at != NULL) {
        /* {"kind":"output","text":"..."}: the text runs to the closing `"}`. */
        const char *from = at + strlen(key);
        size_t len = strlen(from);
        len = len >= 2 ? len - 2 : 0;
        size_t used = strlen(s->text);
        if (used + len < sizeof s->text) {
            memcpy(s->text + used, from, len);
            s->text[used + len] = '\0';
        }
    }
    return 1;
}

/* Reads events until the output holds `want` (or, with `want` NULL, until the end), for at
 * most 60 s; returns whether it came. */
static int read_until(e2b_terminal_t term, struct screen *s, const char *want) {
    double until = now_s() + 60.0;
    while (now_s() < until) {
        if (want != NULL && contains(s->text, want)) {
            return 1;
        }
        if (s->end[0] != '\0') {
            return want == NULL;
        }
        char *json = NULL;
        if (e2b_pty_next(term, 200, &json) != E2B_OK) {
            return 0;
        }
        if (json != NULL) {
            take(s, json);
            e2b_string_free(json);
        }
    }
    return 0;
}

static void shell_checks(e2b_sandbox_t sbx) {
    e2b_terminal_t term = 0;
    CHECK_CODE(e2b_pty_create(sbx, "{\"cols\": 100, \"rows\": 30, \"envs\": {\"GREETING\": \"hi-there\"}}",
                              &term),
               E2B_OK);
    CHECK(term != 0);
    char *name = NULL;
    CHECK_CODE(e2b_pty_name(term, &name), E2B_OK);
    CHECK(name != NULL && strncmp(name, "e2b", 3) == 0);
    e2b_string_free(name);

    static struct screen s;
    memset(&s, 0, sizeof s);
    /* The typed line's echo holds `gr-$GREETING`: only the shell's output has the value. */
    CHECK_CODE(e2b_pty_send_input(term, "echo gr-$GREETING\n"), E2B_OK);
    CHECK(read_until(term, &s, "gr-hi-there"));

    CHECK_CODE(e2b_pty_resize(term, 120, 40), E2B_OK);
    CHECK_CODE(e2b_pty_send_input(term, "stty size\n"), E2B_OK);
    CHECK(read_until(term, &s, "40 120"));

    CHECK_CODE(e2b_pty_send_input(term, "exit 3\n"), E2B_OK);
    CHECK(read_until(term, &s, NULL));
    CHECK(contains(s.end, "\"end\":\"exited\"") && contains(s.end, "\"exit_code\":3"));
    /* The end stays readable; input after it is refused with a code of its own. */
    char *again = NULL;
    CHECK_CODE(e2b_pty_next(term, 0, &again), E2B_OK);
    CHECK(contains(again, "\"kind\":\"end\""));
    e2b_string_free(again);
    CHECK_CODE(e2b_pty_send_input(term, "echo late\n"), E2B_ERR_TERMINAL_NOT_FOUND);
    CHECK_CODE(e2b_pty_destroy(term), E2B_OK);
    CHECK_CODE(e2b_pty_destroy(term), E2B_ERR_CLOSED);
    char *json = NULL;
    CHECK_CODE(e2b_pty_next(term, 0, &json), E2B_ERR_CLOSED);
    CHECK(json == NULL);
}

static void reattach_checks(e2b_sandbox_t sbx) {
    e2b_terminal_t term = 0;
    CHECK_CODE(e2b_pty_create(sbx, "{\"kill_on_destroy\": false}", &term), E2B_OK);
    char *name = NULL;
    CHECK_CODE(e2b_pty_name(term, &name), E2B_OK);
    CHECK_CODE(e2b_pty_send_input(term, "echo kept-$((40+2))\n"), E2B_OK);
    static struct screen s;
    memset(&s, 0, sizeof s);
    CHECK(read_until(term, &s, "kept-42"));
    CHECK_CODE(e2b_pty_destroy(term), E2B_OK);

    /* Still running: attach by name; the first output is what the server kept. */
    e2b_terminal_t again = 0;
    CHECK_CODE(e2b_pty_connect(sbx, name, 1, &again), E2B_OK);
    memset(&s, 0, sizeof s);
    CHECK(read_until(again, &s, "kept-42"));
    int killed = -1;
    CHECK_CODE(e2b_pty_kill(again, &killed), E2B_OK);
    CHECK(killed == 1);
    CHECK(read_until(again, &s, NULL));
    CHECK(contains(s.end, "\"end\":\"killed\""));
    CHECK_CODE(e2b_pty_kill(again, &killed), E2B_OK);
    CHECK(killed == 0);
    CHECK_CODE(e2b_pty_destroy(again), E2B_OK);

    e2b_terminal_t none = 7;
    CHECK_CODE(e2b_pty_connect(sbx, name, 1, &none), E2B_ERR_TERMINAL_NOT_FOUND);
    CHECK(none == 0);
    e2b_string_free(name);
}

static void error_checks(e2b_sandbox_t sbx) {
    e2b_terminal_t term = 7;
    CHECK_CODE(e2b_pty_create(sbx, "{\"colls\": 80}", &term), E2B_ERR_INVALID_ARGUMENT);
    CHECK(term == 0);
    CHECK_CODE(e2b_pty_create(sbx, "{\"cols\": 0}", &term), E2B_ERR_INVALID_ARGUMENT);
    CHECK_CODE(e2b_pty_create(0, NULL, &term), E2B_ERR_NULL_ARG);
    CHECK_CODE(e2b_pty_create(sbx, NULL, NULL), E2B_ERR_NULL_ARG);
    CHECK_CODE(e2b_pty_connect(sbx, NULL, 1, &term), E2B_ERR_NULL_ARG);
    CHECK_CODE(e2b_pty_send_input(0, "ls\n"), E2B_ERR_NULL_ARG);
    CHECK_CODE(e2b_pty_next(424242, 0, NULL), E2B_ERR_NULL_ARG);
    char *json = NULL;
    CHECK_CODE(e2b_pty_next(424242, 0, &json), E2B_ERR_CLOSED);
    CHECK_CODE(e2b_pty_destroy(0), E2B_OK);

    CHECK_CODE(e2b_pty_create(sbx, NULL, &term), E2B_OK);
    CHECK_CODE(e2b_pty_resize(term, 0, 24), E2B_ERR_INVALID_ARGUMENT);
    CHECK_CODE(e2b_pty_send_input(term, "\xff\n"), E2B_ERR_INVALID_UTF8);
    CHECK_CODE(e2b_pty_destroy(term), E2B_OK);
    CHECK(strcmp(e2b_error_code_name(E2B_ERR_TERMINAL_NOT_FOUND), "E2B_ERR_TERMINAL_NOT_FOUND") == 0);
}

int main(void) {
    e2b_sandbox_t sbx = 0;
    if (e2b_sandbox_local(NULL, &sbx) != E2B_OK) {
        fprintf(stderr, "no local sandbox: %s\n", e2b_last_error_message());
        return 2;
    }
    shell_checks(sbx);
    reattach_checks(sbx);
    error_checks(sbx);
    CHECK_CODE(e2b_sandbox_destroy(sbx), E2B_OK);
    printf("pty: %d checks, %d failed\n", checks, failures);
    if (failures == 0) {
        printf("pty: all\n");
    }
    return failures == 0 ? 0 : 1;
}
