/*
 * An E2B sandbox's life cycle through the C ABI: lifetime, info, pause and resume, snapshot,
 * fork, connect by id. Run by tests/c_abi.rs (also under valgrind) against a scripted E2B
 * control plane (E2B_TEST_API_URL) and a tokenless jupyter_server standing in for the
 * sandbox (E2B_TEST_JUPYTER_URL). Exits 0 when every check holds; prints each failed check.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "e2b_blocking.h"
#include "check.h"

static char options[2048];

/* The control-plane keys every call here takes, then `extra` (a JSON fragment or ""). */
static const char *opts(const char *api, const char *jupyter, const char *extra) {
    snprintf(options, sizeof options,
             "{\"api_key\": \"e2b_test\", \"api_url\": \"%s\", \"sandbox_url\": \"%s\"%s%s}", api,
             jupyter, extra[0] ? ", " : "", extra);
    return options;
}

/* e2b_sandbox_info's JSON contains `expected`. */
static void info_has(e2b_sandbox_t sbx, const char *expected) {
    char *json = NULL;
    CHECK_CODE(e2b_sandbox_info(sbx, &json), E2B_OK);
    CHECK(contains(json, expected));
    if (!contains(json, expected)) fprintf(stderr, "info: %s\n", json ? json : "(null)");
    e2b_string_free(json);
}

int main(void) {
    const char *api = getenv("E2B_TEST_API_URL");
    const char *jupyter = getenv("E2B_TEST_JUPYTER_URL");
    if (api == NULL || jupyter == NULL) {
        fprintf(stderr, "set E2B_TEST_API_URL and E2B_TEST_JUPYTER_URL\n");
        return 2;
    }

    /* Bad lifecycle options are refused before anything is created. */
    e2b_sandbox_t sbx = 7;
    CHECK_CODE(e2b_sandbox_create(opts(api, jupyter, "\"lifecycle\": {\"auto_resume\": true}"),
                                  &sbx),
               E2B_ERR_INVALID_ARGUMENT);
    CHECK(sbx == 0);

    CHECK_CODE(e2b_sandbox_create(
                   opts(api, jupyter,
                        "\"lifecycle\": {\"on_timeout\": \"pause\", \"pause_mode\": \"full\"}, "
                        "\"network\": {\"allow_out\": [\"example.com\"], \"dns_servers\": []}"),
                   &sbx),
               E2B_OK);
    if (sbx == 0) {
        fprintf(stderr, "lifecycle: %d of %d checks failed\n", failures + 1, checks);
        return 1;
    }
    CHECK_CODE(e2b_sandbox_set_lifetime(sbx, 120000), E2B_OK);
    info_has(sbx, "\"state\":\"running\"");
    info_has(sbx, "\"on_timeout\":\"pause\"");
    CHECK(!contains(options, "envd-tok"));

    /* Pause twice: the second finds it paused, which is no error. */
    int paused = -1;
    CHECK_CODE(e2b_sandbox_pause(sbx, "{\"mode\": \"half\"}", &paused), E2B_ERR_INVALID_ARGUMENT);
    CHECK(paused == 0);
    CHECK_CODE(e2b_sandbox_pause(sbx, "{\"mode\": \"full\", \"strict\": true}", &paused), E2B_OK);
    CHECK(paused == 1);
    CHECK_CODE(e2b_sandbox_pause(sbx, NULL, &paused), E2B_OK);
    CHECK(paused == 0);
    CHECK_CODE(e2b_sandbox_pause(sbx, NULL, NULL), E2B_OK);
    info_has(sbx, "\"state\":\"paused\"");
    CHECK_CODE(e2b_sandbox_resume(sbx, "{\"on_resume\": \"sideways\"}"), E2B_ERR_INVALID_ARGUMENT);
    CHECK_CODE(e2b_sandbox_resume(sbx, "{\"on_resume\": \"restore\", \"lifetime_ms\": 60000}"),
               E2B_OK);
    info_has(sbx, "\"state\":\"running\"");
    char *json = NULL;
    CHECK_CODE(e2b_run_code(sbx, "6 * 7", &json), E2B_OK);
    CHECK(contains(json, "\"42\""));
    e2b_string_free(json);

    /* A snapshot, usable as a template. */
    json = NULL;
    CHECK_CODE(e2b_sandbox_snapshot(sbx, "{\"name\": \"snap-1\", \"mode\": \"filesystem\"}", &json),
               E2B_OK);
    CHECK(contains(json, "\"snapshot_id\":\"snap-1:default\""));
    e2b_string_free(json);

    /* Three forks, the second refused by E2B: one result each. */
    e2b_sandbox_t forks[3] = {9, 9, 9};
    e2b_error_code_t codes[3] = {E2B_OK, E2B_OK, E2B_OK};
    CHECK_CODE(e2b_sandbox_fork("sbx-local", opts(api, jupyter, "\"template\": \"t\""), 3, forks,
                                codes),
               E2B_ERR_INVALID_ARGUMENT);
    CHECK(forks[0] == 0 && codes[2] == E2B_ERR_INVALID_ARGUMENT);
    CHECK_CODE(e2b_sandbox_fork("sbx-local", opts(api, jupyter, ""), 3, NULL, codes),
               E2B_ERR_NULL_ARG);
    CHECK_CODE(e2b_sandbox_fork("sbx-local", opts(api, jupyter, "\"lifetime_ms\": 60000"), 3,
                                forks, codes),
               E2B_OK);
    CHECK(codes[0] == E2B_OK && forks[0] != 0);
    CHECK(codes[1] == E2B_ERR_RATE_LIMITED && forks[1] == 0);
    CHECK(codes[2] == E2B_OK && forks[2] != 0);
    for (int i = 0; i < 3; i++) CHECK_CODE(e2b_sandbox_destroy(forks[i]), E2B_OK);

    /* Connect by id: what only creating takes is refused. */
    e2b_sandbox_t other = 5;
    CHECK_CODE(e2b_sandbox_e2b_connect("sbx-local", opts(api, jupyter, "\"template\": \"t\""),
                                       &other),
               E2B_ERR_INVALID_ARGUMENT);
    CHECK(other == 0);
    CHECK_CODE(e2b_sandbox_e2b_connect("sbx-local", opts(api, jupyter, "\"on_resume\": \"reboot\""),
                                       &other),
               E2B_OK);
    CHECK(other != 0);
    CHECK_CODE(e2b_sandbox_destroy(other), E2B_OK);

    /* Handles that are not live, or not E2B sandboxes' at all. */
    CHECK_CODE(e2b_sandbox_pause(0, NULL, NULL), E2B_ERR_NULL_ARG);
    CHECK_CODE(e2b_sandbox_set_lifetime(987654, 1000), E2B_ERR_CLOSED);
    CHECK_CODE(e2b_sandbox_info(sbx, NULL), E2B_ERR_NULL_ARG);

    CHECK_CODE(e2b_sandbox_destroy(sbx), E2B_OK);
    if (failures) {
        fprintf(stderr, "lifecycle: %d of %d checks failed\n", failures, checks);
        return 1;
    }
    printf("lifecycle: all %d checks hold\n", checks);
    return 0;
}
