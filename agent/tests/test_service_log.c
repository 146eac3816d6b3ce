/* Service logs: rotation keeps each stream within 2 x max_bytes and at least its last
 * max_bytes; the tail is read across the rotated and the current file. */
#include "service_log.h"
#include "test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static size_t tail_of(const char *s, uint64_t lines)
{
    return pyro_log_tail_start((const uint8_t *)s, strlen(s), lines);
}

static void tail_start(void)
{
    CHECK(tail_of("a\nb\nc\n", 2) == 2); /* "b\nc\n" */
    CHECK(tail_of("a\nb\nc", 2) == 2);   /* a last line without \n counts */
    CHECK(tail_of("a\nb\nc\n", 3) == 0);
    CHECK(tail_of("a\nb\nc\n", 100) == 0);
    CHECK(tail_of("a\nb\nc\n", 1) == 4);
    CHECK(tail_of("\n\n\n", 1) == 2); /* empty lines are lines */
    CHECK(tail_of("", 5) == 0);
    CHECK(tail_of("no newline", 1) == 0);
}

static long size_of(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

/* Writes lines "0\n".."N-1\n" in uneven chunks; returns the whole text. */
static char *write_lines(struct pyro_service_log *log, int count)
{
    size_t cap = (size_t)count * 8 + 1, len = 0;
    char *all = malloc(cap);
    for (int i = 0; i < count; i++)
        len += (size_t)snprintf(all + len, cap - len, "%d\n", i);
    for (size_t off = 0, step = 1; off < len; off += step, step = step % 997 + 13)
        pyro_service_log_append(log, (const uint8_t *)all + off,
                                len - off < step ? len - off : step);
    return all;
}

static void rotation_bounds_the_files(const char *dir)
{
    char path[512], rotated[520];
    struct pyro_service_log log;
    struct pyro_error e;
    snprintf(path, sizeof path, "%s/svc.stdout", dir);
    snprintf(rotated, sizeof rotated, "%s.1", path);
    CHECK(pyro_service_log_open(&log, path, 4096, &e));
    char *all = write_lines(&log, 5000); /* 23,890 bytes: > 5 x 4096 */
    size_t len = strlen(all);
    CHECK(size_of(rotated) == 4096);
    CHECK(size_of(path) >= 0 && size_of(path) < 4096);
    CHECK(log.discarded); /* older .1 files were replaced */
    struct pyro_log_tail tail;
    CHECK(pyro_service_log_tail(path, 100000, 1 << 20, &tail, &e));
    size_t kept = (size_t)(size_of(rotated) + size_of(path));
    CHECK(tail.len == kept && memcmp(tail.data, all + len - kept, kept) == 0);
    CHECK(!tail.truncated); /* everything on disk was sent */
    free(tail.data);
    CHECK(pyro_service_log_tail(path, 2, 1 << 20, &tail, &e));
    CHECK(tail.len == 10 && memcmp(tail.data, "4998\n4999\n", 10) == 0);
    CHECK(tail.truncated);
    free(tail.data);
    /* max_bytes cuts inside .1 + current: the newest bytes win. */
    CHECK(pyro_service_log_tail(path, 100000, 5000, &tail, &e));
    CHECK(tail.len == 5000 && memcmp(tail.data, all + len - 5000, 5000) == 0);
    free(tail.data);
    pyro_service_log_close(&log);
    /* Opening again starts empty and removes the old .1. */
    CHECK(pyro_service_log_open(&log, path, 4096, &e));
    CHECK(size_of(path) == 0 && size_of(rotated) == -1);
    CHECK(pyro_service_log_tail(path, 10, 100, &tail, &e) && tail.len == 0 && !tail.truncated);
    free(tail.data);
    pyro_service_log_close(&log);
    free(all);
    unlink(path);
}

static void missing_log_reads_empty(const char *dir)
{
    char path[512];
    struct pyro_log_tail tail;
    struct pyro_error e;
    snprintf(path, sizeof path, "%s/never.stderr", dir);
    CHECK(pyro_service_log_tail(path, 10, 100, &tail, &e));
    CHECK(tail.len == 0 && !tail.truncated);
    free(tail.data);
}

void test_service_log(void)
{
    char dir[] = "/tmp/pyro-service-log-XXXXXX";
    tail_start();
    if (!mkdtemp(dir)) {
        CHECK(!"mkdtemp");
        return;
    }
    rotation_bounds_the_files(dir);
    missing_log_reads_empty(dir);
    rmdir(dir);
}
