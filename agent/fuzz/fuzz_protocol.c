/* libFuzzer target for everything the agent parses from the host: frames and the
 * JSON in control frames.
 *
 * The first input byte picks the chunk size the bytes are fed in (exercising every
 * split of headers and payloads); each complete control frame is parsed as JSON, and
 * every document that parses is written back with the writer and parsed again, which
 * must give the same tree. The whole input is also parsed as JSON on its own, so the
 * fuzzer reaches the JSON parser without having to build a frame header first.
 *
 * The file operations' path strings ("root", "path", "workspace_root" members, and the
 * raw input) go through the lexical path code, which must give clean paths that stay
 * clean and never climb out of the root. */
#include "frame.h"
#include "json.h"
#include "path.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_MAX_VALUES 4096

static struct pyro_frame_reader reader;
static struct pyro_json_value values[2][FUZZ_MAX_VALUES];
static char strings[2][PYRO_MAX_CONTROL_BYTES + 1];
static char rewritten[4 * PYRO_MAX_CONTROL_BYTES];

static const struct pyro_json_value *parse(int slot, const char *text, size_t len)
{
    static struct pyro_json_parser parser;
    parser = (struct pyro_json_parser){.values = values[slot],
                                       .max_values = FUZZ_MAX_VALUES,
                                       .strings = strings[slot],
                                       .strings_cap = sizeof strings[slot],
                                       .max_input_bytes = PYRO_MAX_CONTROL_BYTES};
    return pyro_json_parse(&parser, text, len);
}

static void write_value(struct pyro_json_writer *w, const struct pyro_json_value *v)
{
    if (v->key)
        pyro_json_key_n(w, v->key, v->key_len);
    switch (v->type) {
    case PYRO_JSON_NULL:
        pyro_json_null(w);
        break;
    case PYRO_JSON_BOOL:
        pyro_json_bool(w, v->boolean);
        break;
    case PYRO_JSON_NUMBER:
        pyro_json_int(w, v->is_int ? v->integer : 0);
        break;
    case PYRO_JSON_STRING:
        pyro_json_string_n(w, v->str, v->len);
        break;
    case PYRO_JSON_ARRAY:
    case PYRO_JSON_OBJECT:
        if (v->type == PYRO_JSON_ARRAY)
            pyro_json_array_begin(w);
        else
            pyro_json_object_begin(w);
        for (const struct pyro_json_value *c = v->child; c; c = c->next)
            write_value(w, c);
        if (v->type == PYRO_JSON_ARRAY)
            pyro_json_array_end(w);
        else
            pyro_json_object_end(w);
        break;
    }
}

static int same_tree(const struct pyro_json_value *a, const struct pyro_json_value *b)
{
    if (a->type != b->type || a->count != b->count || a->key_len != b->key_len ||
        (a->key_len && memcmp(a->key, b->key, a->key_len) != 0))
        return 0;
    switch (a->type) {
    case PYRO_JSON_BOOL:
        return a->boolean == b->boolean;
    case PYRO_JSON_NUMBER:
        return (a->is_int ? a->integer : 0) == b->integer;
    case PYRO_JSON_STRING:
        return a->len == b->len && memcmp(a->str, b->str, a->len) == 0;
    case PYRO_JSON_ARRAY:
    case PYRO_JSON_OBJECT:
        for (a = a->child, b = b->child; a && b; a = a->next, b = b->next)
            if (!same_tree(a, b))
                return 0;
        return a == NULL && b == NULL;
    default:
        return 1;
    }
}

/* A cleaned path has no empty, "." or ".." component, unless it is "." or "/". */
static int is_clean(const char *p)
{
    if (strcmp(p, ".") == 0 || strcmp(p, "/") == 0)
        return 1;
    const char *c = p[0] == '/' ? p + 1 : p;
    for (;;) {
        size_t n = strcspn(c, "/");
        if (n == 0 || (n == 1 && c[0] == '.') || (n == 2 && c[0] == '.' && c[1] == '.'))
            return 0;
        if (c[n] == '\0')
            return 1;
        c += n + 1;
    }
}

static void check_path(const char *s)
{
    static char clean[PATH_MAX], again[PATH_MAX], rel[PATH_MAX], dir[PATH_MAX + 2];
    if (pyro_path_clean(s, clean, sizeof clean) == 0) {
        if (!is_clean(clean) || (clean[0] == '/') != (s[0] == '/') ||
            pyro_path_clean(clean, again, sizeof again) != 0 || strcmp(clean, again) != 0)
            abort();
        const char *name = pyro_path_split(clean, dir, sizeof dir);
        if (strchr(name, '/') != NULL)
            abort();
    }
    if (pyro_path_under_root("/workspace", s, rel, sizeof rel) == 0 &&
        (!is_clean(rel) || rel[0] == '/' || pyro_path_has_dotdot(rel)))
        abort();
}

static void check_paths(const struct pyro_json_value *v)
{
    static const char *const fields[] = {"root", "path", "workspace_root"};
    if (v->type != PYRO_JSON_OBJECT)
        return;
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        const struct pyro_json_value *f = pyro_json_get(v, fields[i]);
        if (pyro_json_is_cstring(f))
            check_path(f->str);
    }
}

static void check_json(const char *text, size_t len)
{
    const struct pyro_json_value *v = parse(0, text, len);
    if (!v)
        return;
    check_paths(v);
    struct pyro_json_writer w;
    pyro_json_writer_init(&w, rewritten, sizeof rewritten);
    write_value(&w, v);
    long out_len = pyro_json_finish(&w);
    if (out_len < 0)
        return; /* a document of escapes may not fit 4x; that is the writer's contract */
    const struct pyro_json_value *again = parse(1, rewritten, (size_t)out_len);
    if (!again || !same_tree(v, again)) {
        fprintf(stderr, "JSON round trip failed: %.*s\n", (int)out_len, rewritten);
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    size_t chunk = (size_t)(data[0] % 32) + 1;
    pyro_frame_reader_reset(&reader);
    size_t off = 1;
    while (off < size) {
        size_t len = size - off < chunk ? size - off : chunk, used;
        enum pyro_frame_status st = pyro_frame_reader_push(&reader, data + off, len, &used);
        if (used > len || reader.payload_have > PYRO_MAX_PAYLOAD_BYTES)
            abort();
        off += used;
        if (st == PYRO_FRAME_TOO_LARGE) {
            if (reader.header.payload_len <= PYRO_MAX_PAYLOAD_BYTES)
                abort();
            break;
        }
        if (st == PYRO_FRAME_READY && reader.header.type == PYRO_FRAME_CONTROL &&
            reader.header.payload_len <= PYRO_MAX_CONTROL_BYTES)
            check_json((const char *)reader.payload, reader.header.payload_len);
    }
    check_json((const char *)data + 1, size - 1);
    static char raw[PATH_MAX + 16];
    size_t raw_len = size - 1 < sizeof raw - 1 ? size - 1 : sizeof raw - 1;
    memcpy(raw, data + 1, raw_len);
    raw[raw_len] = '\0';
    check_path(raw);
    return 0;
}
