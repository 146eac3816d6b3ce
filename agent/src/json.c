#include "json.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Longest number text accepted; longer literals are refused rather than copied. */
#define JSON_MAX_NUMBER_CHARS 128

struct parse_ctx {
    struct pyro_json_parser *p;
    const unsigned char *s;
    size_t len;
    size_t pos;
    size_t values_used;
    size_t strings_used;
};

/* Length of the valid UTF-8 sequence at s (1..4), or 0 when it is not valid UTF-8:
 * overlong forms, UTF-16 surrogates and code points above U+10FFFF are rejected. */
static size_t utf8_sequence_len(const unsigned char *s, size_t avail)
{
    unsigned char b = s[0];
    if (b < 0x80)
        return 1;
    size_t need;
    unsigned char lo = 0x80, hi = 0xBF;
    if (b >= 0xC2 && b <= 0xDF) {
        need = 2;
    } else if (b >= 0xE0 && b <= 0xEF) {
        need = 3;
        if (b == 0xE0)
            lo = 0xA0;
        if (b == 0xED)
            hi = 0x9F;
    } else if (b >= 0xF0 && b <= 0xF4) {
        need = 4;
        if (b == 0xF0)
            lo = 0x90;
        if (b == 0xF4)
            hi = 0x8F;
    } else {
        return 0;
    }
    if (avail < need || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < need; i++)
        if ((s[i] & 0xC0) != 0x80)
            return 0;
    return need;
}

static bool fail(struct parse_ctx *c, const char *why)
{
    snprintf(c->p->error, sizeof c->p->error, "invalid JSON at byte %zu: %s", c->pos, why);
    return false;
}

static void skip_ws(struct parse_ctx *c)
{
    while (c->pos < c->len) {
        unsigned char ch = c->s[c->pos];
        if (ch != ' ' && ch != '\t' && ch != '\n' && ch != '\r')
            return;
        c->pos++;
    }
}

static struct pyro_json_value *new_value(struct parse_ctx *c, enum pyro_json_type type)
{
    if (c->values_used >= c->p->max_values) {
        fail(c, "too many values");
        return NULL;
    }
    struct pyro_json_value *v = &c->p->values[c->values_used++];
    memset(v, 0, sizeof *v);
    v->type = type;
    return v;
}

static int hex_digit(unsigned char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* Reads the 4 hex digits of a \u escape starting at c->pos. */
static bool read_hex4(struct parse_ctx *c, unsigned *out)
{
    if (c->len - c->pos < 4)
        return fail(c, "truncated \\u escape");
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        int d = hex_digit(c->s[c->pos + (size_t)i]);
        if (d < 0)
            return fail(c, "bad hex digit in \\u escape");
        v = (v << 4) | (unsigned)d;
    }
    c->pos += 4;
    *out = v;
    return true;
}

static size_t utf8_encode(unsigned cp, char *out)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Decodes a \uXXXX escape (c->pos just after the 'u'), joining surrogate pairs. */
static bool parse_unicode_escape(struct parse_ctx *c, char *dst, size_t *written)
{
    unsigned cp;
    if (!read_hex4(c, &cp))
        return false;
    if (cp >= 0xDC00 && cp <= 0xDFFF)
        return fail(c, "lone low surrogate");
    if (cp >= 0xD800 && cp <= 0xDBFF) {
        if (c->len - c->pos < 2 || c->s[c->pos] != '\\' || c->s[c->pos + 1] != 'u')
            return fail(c, "high surrogate without low surrogate");
        c->pos += 2;
        unsigned low;
        if (!read_hex4(c, &low))
            return false;
        if (low < 0xDC00 || low > 0xDFFF)
            return fail(c, "high surrogate without low surrogate");
        cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
    }
    *written = utf8_encode(cp, dst);
    return true;
}

static bool parse_escape(struct parse_ctx *c, char *dst, size_t *written)
{
    if (c->pos >= c->len)
        return fail(c, "unterminated string");
    unsigned char e = c->s[c->pos++];
    static const char from[] = "\"\\/bfnrt";
    static const char to[] = "\"\\/\b\f\n\r\t";
    const char *hit = e ? strchr(from, e) : NULL;
    if (hit) {
        *dst = to[hit - from];
        *written = 1;
        return true;
    }
    if (e == 'u')
        return parse_unicode_escape(c, dst, written);
    c->pos--;
    return fail(c, "invalid escape");
}

/* Parses a string at c->pos (on the opening quote) into the strings storage. The
 * decoded form is never longer than the encoded one, so storage of input length + 1
 * always suffices; the check below is defence in depth. */
static bool parse_string(struct parse_ctx *c, const char **out, size_t *out_len)
{
    c->pos++; /* opening quote */
    char *start = c->p->strings + c->strings_used;
    size_t room = c->p->strings_cap - c->strings_used;
    size_t n = 0;
    for (;;) {
        if (c->pos >= c->len)
            return fail(c, "unterminated string");
        if (room - n < 5)
            return fail(c, "string storage exhausted");
        unsigned char ch = c->s[c->pos];
        if (ch == '"') {
            c->pos++;
            break;
        }
        if (ch < 0x20)
            return fail(c, "control character in string");
        if (ch == '\\') {
            c->pos++;
            size_t w = 0;
            if (!parse_escape(c, start + n, &w))
                return false;
            n += w;
            continue;
        }
        size_t seq = utf8_sequence_len(c->s + c->pos, c->len - c->pos);
        if (seq == 0)
            return fail(c, "invalid UTF-8");
        memcpy(start + n, c->s + c->pos, seq);
        n += seq;
        c->pos += seq;
    }
    start[n] = '\0';
    c->strings_used += n + 1;
    *out = start;
    *out_len = n;
    return true;
}

static size_t scan_digits(struct parse_ctx *c)
{
    size_t n = 0;
    while (c->pos < c->len && c->s[c->pos] >= '0' && c->s[c->pos] <= '9') {
        c->pos++;
        n++;
    }
    return n;
}

/* Exact int64 value of an integer literal, or false when it does not fit. */
static bool integer_value(const unsigned char *s, size_t len, int64_t *out)
{
    bool neg = s[0] == '-';
    uint64_t limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    uint64_t v = 0;
    for (size_t i = neg ? 1 : 0; i < len; i++) {
        uint64_t d = (uint64_t)(s[i] - '0');
        if (v > (limit - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return true;
}

static bool parse_number(struct parse_ctx *c, struct pyro_json_value *v)
{
    size_t start = c->pos;
    bool integral = true;
    if (c->s[c->pos] == '-')
        c->pos++;
    if (c->pos < c->len && c->s[c->pos] == '0') {
        c->pos++;
        if (c->pos < c->len && c->s[c->pos] >= '0' && c->s[c->pos] <= '9')
            return fail(c, "leading zero in number");
    } else if (scan_digits(c) == 0) {
        return fail(c, "invalid number");
    }
    if (c->pos < c->len && c->s[c->pos] == '.') {
        c->pos++;
        integral = false;
        if (scan_digits(c) == 0)
            return fail(c, "digit expected after decimal point");
    }
    if (c->pos < c->len && (c->s[c->pos] == 'e' || c->s[c->pos] == 'E')) {
        c->pos++;
        integral = false;
        if (c->pos < c->len && (c->s[c->pos] == '+' || c->s[c->pos] == '-'))
            c->pos++;
        if (scan_digits(c) == 0)
            return fail(c, "digit expected in exponent");
    }
    size_t n = c->pos - start;
    if (n > JSON_MAX_NUMBER_CHARS)
        return fail(c, "number too long");
    char text[JSON_MAX_NUMBER_CHARS + 1];
    memcpy(text, c->s + start, n);
    text[n] = '\0';
    v->number = strtod(text, NULL);
    v->is_int = integral && integer_value(c->s + start, n, &v->integer);
    return true;
}

static bool parse_literal(struct parse_ctx *c, const char *word)
{
    size_t n = strlen(word);
    if (c->len - c->pos < n || memcmp(c->s + c->pos, word, n) != 0)
        return fail(c, "unexpected character");
    c->pos += n;
    return true;
}

static bool parse_value(struct parse_ctx *c, int depth, struct pyro_json_value **out);

static void append_child(struct pyro_json_value *parent, struct pyro_json_value **tail,
                         struct pyro_json_value *child)
{
    if (*tail)
        (*tail)->next = child;
    else
        parent->child = child;
    *tail = child;
    parent->count++;
}

static bool parse_array(struct parse_ctx *c, int depth, struct pyro_json_value *v)
{
    struct pyro_json_value *tail = NULL;
    c->pos++; /* [ */
    skip_ws(c);
    if (c->pos < c->len && c->s[c->pos] == ']') {
        c->pos++;
        return true;
    }
    for (;;) {
        struct pyro_json_value *item;
        if (!parse_value(c, depth + 1, &item))
            return false;
        append_child(v, &tail, item);
        skip_ws(c);
        if (c->pos >= c->len)
            return fail(c, "unterminated array");
        unsigned char ch = c->s[c->pos++];
        if (ch == ']')
            return true;
        if (ch != ',') {
            c->pos--;
            return fail(c, "',' or ']' expected");
        }
    }
}

static bool key_is_duplicate(const struct pyro_json_value *object, const char *key,
                             size_t key_len)
{
    for (const struct pyro_json_value *m = object->child; m; m = m->next)
        if (m->key_len == key_len && memcmp(m->key, key, key_len) == 0)
            return true;
    return false;
}

static bool parse_member(struct parse_ctx *c, int depth, struct pyro_json_value *object,
                         struct pyro_json_value **tail)
{
    if (c->pos >= c->len || c->s[c->pos] != '"')
        return fail(c, "object key expected");
    size_t key_pos = c->pos;
    const char *key;
    size_t key_len;
    if (!parse_string(c, &key, &key_len))
        return false;
    if (key_is_duplicate(object, key, key_len)) {
        c->pos = key_pos;
        return fail(c, "duplicate object key");
    }
    skip_ws(c);
    if (c->pos >= c->len || c->s[c->pos] != ':')
        return fail(c, "':' expected");
    c->pos++;
    struct pyro_json_value *value;
    if (!parse_value(c, depth + 1, &value))
        return false;
    value->key = key;
    value->key_len = key_len;
    append_child(object, tail, value);
    return true;
}

static bool parse_object(struct parse_ctx *c, int depth, struct pyro_json_value *v)
{
    struct pyro_json_value *tail = NULL;
    c->pos++; /* { */
    skip_ws(c);
    if (c->pos < c->len && c->s[c->pos] == '}') {
        c->pos++;
        return true;
    }
    for (;;) {
        skip_ws(c);
        if (!parse_member(c, depth, v, &tail))
            return false;
        skip_ws(c);
        if (c->pos >= c->len)
            return fail(c, "unterminated object");
        unsigned char ch = c->s[c->pos++];
        if (ch == '}')
            return true;
        if (ch != ',') {
            c->pos--;
            return fail(c, "',' or '}' expected");
        }
    }
}

static enum pyro_json_type type_at(unsigned char ch)
{
    switch (ch) {
    case '{':
        return PYRO_JSON_OBJECT;
    case '[':
        return PYRO_JSON_ARRAY;
    case '"':
        return PYRO_JSON_STRING;
    case 't':
    case 'f':
        return PYRO_JSON_BOOL;
    case 'n':
        return PYRO_JSON_NULL;
    default:
        return PYRO_JSON_NUMBER;
    }
}

static bool parse_value(struct parse_ctx *c, int depth, struct pyro_json_value **out)
{
    if (depth > PYRO_JSON_MAX_DEPTH)
        return fail(c, "nesting too deep");
    skip_ws(c);
    if (c->pos >= c->len)
        return fail(c, "value expected");
    unsigned char ch = c->s[c->pos];
    struct pyro_json_value *v = new_value(c, type_at(ch));
    if (!v)
        return false;
    *out = v;
    switch (v->type) {
    case PYRO_JSON_OBJECT:
        return parse_object(c, depth, v);
    case PYRO_JSON_ARRAY:
        return parse_array(c, depth, v);
    case PYRO_JSON_STRING:
        return parse_string(c, &v->str, &v->len);
    case PYRO_JSON_BOOL:
        v->boolean = ch == 't';
        return parse_literal(c, ch == 't' ? "true" : "false");
    case PYRO_JSON_NULL:
        return parse_literal(c, "null");
    case PYRO_JSON_NUMBER:
        if (ch != '-' && (ch < '0' || ch > '9'))
            return fail(c, "unexpected character");
        return parse_number(c, v);
    }
    return fail(c, "unexpected character");
}

const struct pyro_json_value *pyro_json_parse(struct pyro_json_parser *parser, const char *text,
                                              size_t len)
{
    struct parse_ctx c = {.p = parser, .s = (const unsigned char *)text, .len = len};
    parser->error[0] = '\0';
    if (len > parser->max_input_bytes || len >= parser->strings_cap) {
        snprintf(parser->error, sizeof parser->error,
                 "JSON text is %zu bytes; the limit is %zu", len,
                 parser->max_input_bytes < parser->strings_cap ? parser->max_input_bytes
                                                               : parser->strings_cap - 1);
        return NULL;
    }
    struct pyro_json_value *root;
    if (!parse_value(&c, 0, &root))
        return NULL;
    skip_ws(&c);
    if (c.pos != c.len) {
        fail(&c, "trailing characters after JSON value");
        return NULL;
    }
    return root;
}

const struct pyro_json_value *pyro_json_get(const struct pyro_json_value *object,
                                            const char *key)
{
    if (!object || object->type != PYRO_JSON_OBJECT)
        return NULL;
    size_t key_len = strlen(key);
    for (const struct pyro_json_value *m = object->child; m; m = m->next)
        if (m->key_len == key_len && memcmp(m->key, key, key_len) == 0)
            return m;
    return NULL;
}

bool pyro_json_is_cstring(const struct pyro_json_value *value)
{
    return value && value->type == PYRO_JSON_STRING && strlen(value->str) == value->len;
}

/* ---- writer ---- */

void pyro_json_writer_init(struct pyro_json_writer *w, char *buf, size_t cap)
{
    memset(w, 0, sizeof *w);
    w->buf = buf;
    w->cap = cap;
}

static void put(struct pyro_json_writer *w, const char *s, size_t n)
{
    if (w->overflow)
        return;
    if (n > w->cap - w->len) {
        w->overflow = true;
        return;
    }
    memcpy(w->buf + w->len, s, n);
    w->len += n;
}

static void before_value(struct pyro_json_writer *w)
{
    if (w->after_key) {
        w->after_key = false;
        return;
    }
    if (w->need_comma[w->depth])
        put(w, ",", 1);
    w->need_comma[w->depth] = true;
}

static void open_container(struct pyro_json_writer *w, const char *bracket)
{
    before_value(w);
    put(w, bracket, 1);
    if (w->depth >= PYRO_JSON_MAX_DEPTH) {
        w->overflow = true;
        return;
    }
    w->depth++;
    w->need_comma[w->depth] = false;
}

static void close_container(struct pyro_json_writer *w, const char *bracket)
{
    put(w, bracket, 1);
    if (w->depth == 0) {
        w->overflow = true;
        return;
    }
    w->depth--;
}

void pyro_json_object_begin(struct pyro_json_writer *w)
{
    open_container(w, "{");
}

void pyro_json_object_end(struct pyro_json_writer *w)
{
    close_container(w, "}");
}

void pyro_json_array_begin(struct pyro_json_writer *w)
{
    open_container(w, "[");
}

void pyro_json_array_end(struct pyro_json_writer *w)
{
    close_container(w, "]");
}

static void put_escaped(struct pyro_json_writer *w, const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    put(w, "\"", 1);
    size_t i = 0;
    while (i < len) {
        unsigned char ch = p[i];
        char esc[8];
        if (ch == '"' || ch == '\\') {
            esc[0] = '\\';
            esc[1] = (char)ch;
            put(w, esc, 2);
            i++;
        } else if (ch < 0x20) {
            static const char short_form[] = "btn\0fr";
            if (ch >= '\b' && ch <= '\r' && short_form[ch - '\b'] != '\0') {
                esc[0] = '\\';
                esc[1] = short_form[ch - '\b'];
                put(w, esc, 2);
            } else {
                snprintf(esc, sizeof esc, "\\u%04x", ch);
                put(w, esc, 6);
            }
            i++;
        } else {
            size_t seq = utf8_sequence_len(p + i, len - i);
            if (seq == 0) {
                put(w, "\xEF\xBF\xBD", 3); /* U+FFFD for a byte that is not UTF-8 */
                i++;
            } else {
                put(w, s + i, seq);
                i += seq;
            }
        }
    }
    put(w, "\"", 1);
}

void pyro_json_key_n(struct pyro_json_writer *w, const char *key, size_t len)
{
    before_value(w);
    put_escaped(w, key, len);
    put(w, ":", 1);
    w->after_key = true;
}

void pyro_json_key(struct pyro_json_writer *w, const char *key)
{
    pyro_json_key_n(w, key, strlen(key));
}

void pyro_json_string_n(struct pyro_json_writer *w, const char *s, size_t len)
{
    before_value(w);
    put_escaped(w, s, len);
}

void pyro_json_string(struct pyro_json_writer *w, const char *s)
{
    pyro_json_string_n(w, s, strlen(s));
}

void pyro_json_int(struct pyro_json_writer *w, int64_t v)
{
    char num[24];
    int n = snprintf(num, sizeof num, "%" PRId64, v);
    before_value(w);
    put(w, num, (size_t)n);
}

void pyro_json_bool(struct pyro_json_writer *w, bool v)
{
    before_value(w);
    if (v)
        put(w, "true", 4);
    else
        put(w, "false", 5);
}

void pyro_json_null(struct pyro_json_writer *w)
{
    before_value(w);
    put(w, "null", 4);
}

long pyro_json_finish(struct pyro_json_writer *w)
{
    if (w->overflow || w->depth != 0 || w->after_key)
        return -1;
    return (long)w->len;
}
