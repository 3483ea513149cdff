/*
 * e2b_sandbox_connect_jupyter() against a real, token-protected jupyter_server, run by
 * tests/ffi_c.rs (also under valgrind). The Rust side starts the server (a local sandbox) and
 * passes its URL and token in E2B_TEST_JUPYTER_URL and E2B_TEST_JUPYTER_TOKEN: the ABI itself
 * never hands a token out. Exits 0 when every check holds; prints each failed check to stderr.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "e2b_blocking.h"
#include "check.h"

/* Runs code and checks that its JSON contains `expected`. */
static void run_expect(e2b_sandbox_t sbx, const char *code, const char *expected) {
    char *json = NULL;
    CHECK_CODE(e2b_run_code(sbx, code, &json), E2B_OK);
    CHECK(contains(json, expected));
    e2b_string_free(json);
}

int main(void) {
    const char *url = getenv("E2B_TEST_JUPYTER_URL");
    const char *token = getenv("E2B_TEST_JUPYTER_TOKEN");
    if (url == NULL || token == NULL || token[0] == '\0') {
        fprintf(stderr, "set E2B_TEST_JUPYTER_URL and E2B_TEST_JUPYTER_TOKEN\n");
        return 2;
    }

    /* A wrong token, or none, is rejected up front; no token appears in the message. */
    e2b_sandbox_t sbx = 123;
    CHECK_CODE(e2b_sandbox_connect_jupyter(url, "not-the-token", NULL, &sbx),
               E2B_ERR_AUTHENTICATION);
    CHECK(sbx == 0);
    CHECK(!contains(e2b_last_error_message(), "not-the-token"));
    CHECK(!contains(e2b_last_error_message(), token));
    CHECK_CODE(e2b_sandbox_connect_jupyter(url, NULL, "", &sbx), E2B_ERR_AUTHENTICATION);
    CHECK(sbx == 0);
    CHECK_CODE(e2b_sandbox_connect_jupyter(url, "", NULL, &sbx), E2B_ERR_AUTHENTICATION);

    /* Options of a local sandbox that make no sense here are refused. */
    CHECK_CODE(e2b_sandbox_connect_jupyter(url, token, "{\"packages\": [\"numpy\"]}", &sbx),
               E2B_ERR_INVALID_ARGUMENT);

    CHECK_CODE(e2b_sandbox_connect_jupyter(url, token, "{\"binary_framing\": \"no\"}", &sbx),
               E2B_ERR_INVALID_ARGUMENT);

    /* The right token, with env vars, timeouts and JSON framing (everything below uses it). */
    CHECK_CODE(e2b_sandbox_connect_jupyter(url, token,
                                           "{\"envs\": {\"E2B_JUPYTER_FFI\": \"on\"}, "
                                           "\"timeouts\": {\"execution_ms\": 60000, "
                                           "\"connect_ms\": 10000}, \"binary_framing\": false}",
                                           &sbx),
               E2B_OK);
    if (sbx == 0) {
        fprintf(stderr, "connect_jupyter: %d of %d checks failed\n", failures + 1, checks);
        return 1;
    }
    char *s = NULL;
    CHECK_CODE(e2b_sandbox_jupyter_url(sbx, &s), E2B_OK);
    CHECK(s != NULL && strcmp(s, url) == 0);
    e2b_string_free(s);
    CHECK_CODE(e2b_sandbox_id(sbx, &s), E2B_OK);
    CHECK(contains(s, "127.0.0.1:") && !contains(s, "local-"));
    e2b_string_free(s);

    run_expect(sbx, "x = 6\nx * 7", "\"text\":\"42\"");
    run_expect(sbx, "import os; os.environ['E2B_JUPYTER_FFI']", "\"text\":\"'on'\"");

    /* Files over the server's contents API, commands in kernels of their own. */
    CHECK_CODE(e2b_files_write(sbx, "ffi-jupyter/a.txt", (const uint8_t *)"via jupyter", 11),
               E2B_OK);
    uint8_t *data = NULL;
    size_t len = 0;
    CHECK_CODE(e2b_files_read(sbx, "ffi-jupyter/a.txt", &data, &len), E2B_OK);
    CHECK(len == 11 && data != NULL && strcmp((const char *)data, "via jupyter") == 0);
    e2b_bytes_free(data, len);
    char *json = NULL;
    CHECK_CODE(e2b_files_list(sbx, "ffi-jupyter", &json), E2B_OK);
    CHECK(contains(json, "\"path\":\"ffi-jupyter/a.txt\""));
    e2b_string_free(json);
    json = NULL;
    CHECK_CODE(e2b_commands_run(sbx, "cat ffi-jupyter/a.txt; echo \" $E2B_JUPYTER_FFI\"", NULL,
                                NULL, &json),
               E2B_OK);
    CHECK(contains(json, "\"stdout\":\"via jupyter on\\n\""));
    e2b_string_free(json);
    CHECK_CODE(e2b_files_remove(sbx, "ffi-jupyter"), E2B_OK);

    /* Destroying shuts down this sandbox's kernels only: the server stays up. */
    CHECK_CODE(e2b_sandbox_destroy(sbx), E2B_OK);
    CHECK_CODE(e2b_run_code(sbx, "1", &json), E2B_ERR_CLOSED);
    CHECK(json == NULL);

    e2b_sandbox_t again = 0;
    CHECK_CODE(e2b_sandbox_connect_jupyter(url, token, NULL, &again), E2B_OK);
    CHECK(again != 0 && again != sbx);
    run_expect(again, "'still serving'", "still serving");
    CHECK_CODE(e2b_sandbox_kill(again), E2B_OK);
    CHECK_CODE(e2b_run_code(again, "1", &json), E2B_ERR_CLOSED);
    CHECK_CODE(e2b_sandbox_destroy(again), E2B_OK);

    if (failures != 0) {
        fprintf(stderr, "connect_jupyter: %d of %d checks failed\n", failures, checks);
        return 1;
    }
    printf("connect_jupyter: all %d checks hold\n", checks);
    return 0;
}
