/* A small strict JSON parser (RFC 8259) and a JSON writer.
 *
 * The parser builds a tree in caller-provided fixed storage: no allocation, bounded
 * input size, nesting depth and value count. It rejects everything RFC 8259 does not
 * allow (comments, trailing commas, leading zeros, raw control characters, invalid
 * UTF-8, lone surrogates, duplicate object keys, trailing garbage).
 *
 * The writer appends to a fixed buffer and always produces valid UTF-8 JSON: control
 * characters are escaped and invalid UTF-8 bytes become U+FFFD. */
#ifndef PYRO_JSON_H
#define PYRO_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PYRO_JSON_MAX_DEPTH 32

enum pyro_json_type {
    PYRO_JSON_NULL,
    PYRO_JSON_BOOL,
    PYRO_JSON_NUMBER,
    PYRO_JSON_STRING,
    PYRO_JSON_ARRAY,
    PYRO_JSON_OBJECT
};

struct pyro_json_value {
    enum pyro_json_type type;
    bool boolean;
    bool is_int;     /* number written without fraction or exponent, fits int64 */
    int64_t integer; /* valid when is_int */
    double number;   /* every number */
    const char *str; /* string bytes, NUL-terminated; may contain NUL (see len) */
    size_t len;      /* string length in bytes */
    size_t count;    /* array/object: number of children */
    const char *key; /* set when this value is an object member */
    size_t key_len;
    struct pyro_json_value *child; /* first element or member */
    struct pyro_json_value *next;  /* next sibling */
};

struct pyro_json_parser {
    struct pyro_json_value *values; /* storage for the tree */
    size_t max_values;
    char *strings; /* storage for decoded strings; needs >= input length + 1 */
    size_t strings_cap;
    size_t max_input_bytes;
    char error[128]; /* why parsing failed, with the byte offset */
};

/* Parses text[0..len). Returns the root value, or NULL with parser->error set. */
const struct pyro_json_value *pyro_json_parse(struct pyro_json_parser *parser, const char *text,
                                              size_t len);

/* First member named key (keys are unique after a successful parse), or NULL. */
const struct pyro_json_value *pyro_json_get(const struct pyro_json_value *object,
                                            const char *key);

/* True when the value is a string without NUL bytes, usable as a C string. */
bool pyro_json_is_cstring(const struct pyro_json_value *value);

struct pyro_json_writer {
    char *buf;
    size_t cap;
    size_t len;
    bool overflow;
    int depth;
    bool need_comma[PYRO_JSON_MAX_DEPTH + 1];
    bool after_key;
};

void pyro_json_writer_init(struct pyro_json_writer *w, char *buf, size_t cap);
void pyro_json_object_begin(struct pyro_json_writer *w);
void pyro_json_object_end(struct pyro_json_writer *w);
void pyro_json_array_begin(struct pyro_json_writer *w);
void pyro_json_array_end(struct pyro_json_writer *w);
void pyro_json_key(struct pyro_json_writer *w, const char *key);
void pyro_json_key_n(struct pyro_json_writer *w, const char *key, size_t len);
void pyro_json_string(struct pyro_json_writer *w, const char *s);
void pyro_json_string_n(struct pyro_json_writer *w, const char *s, size_t len);
void pyro_json_int(struct pyro_json_writer *w, int64_t v);
void pyro_json_bool(struct pyro_json_writer *w, bool v);
void pyro_json_null(struct pyro_json_writer *w);
/* Returns the length of the finished document, or -1 when it did not fit or is not
 * balanced. */
long pyro_json_finish(struct pyro_json_writer *w);

#endif
