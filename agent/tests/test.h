/* A minimal test harness: CHECK records a failure and goes on. */
#ifndef PYRO_TEST_H
#define PYRO_TEST_H

#include <stdio.h>

extern int test_failures;
extern int test_checks;

#define CHECK(cond)                                                                            \
    do {                                                                                       \
        test_checks++;                                                                         \
        if (!(cond)) {                                                                         \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);           \
            test_failures++;                                                                   \
        }                                                                                      \
    } while (0)

void test_frame(void);
void test_json(void);
void test_init(void);
void test_path(void);
void test_confine(void);
void test_guard(void);
void test_proc(void);
void test_names(void);
void test_ring(void);
void test_service_log(void);
void test_sha256(void);
void test_park(void);
void test_entropy(void);

#endif
