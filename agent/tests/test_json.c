#include "json.h"
#include "protocol.h"
#include "test.h"

#include <stdint.h>
#include <string.h>

#define MAX_VALUES 64

static struct pyro_json_value values[MAX_VALUES];
static char strings[PYRO_MAX_CONTROL_BYTES + 1];
static struct pyro_json_parser parser;

static const struct pyro_json_value *parse_n(const char *text, size_t len)
{
    parser = (struct pyro_json_parser){.values = values,
                                       .max_values = MAX_VALUES,
                                       .strings = strings,
                                       .strings_cap = sizeof strings,
                                       .max_input_bytes = PYRO_MAX_CONTROL_BYTES};
    return pyro_json_parse(&parser, text, len);
}

static const struct pyro_json_value *parse(const char *text)
{
    return parse_n(text, strlen(text));
}

static void parses_a_request(void)
{
    const struct pyro_json_value *v =
        parse(" {\"op\":\"exec\", \"argv\":[\"sh\",\"-c\",\"x\"],\"env\":{\"A\":\"1\"},"
              "\"stdin\":true,\"n\":null,\"t\":-12} \n");
    CHECK(v && v->type == PYRO_JSON_OBJECT && v->count == 6);
    const struct pyro_json_value *argv = pyro_json_get(v, "argv");
    CHECK(argv && argv->type == PYRO_JSON_ARRAY && argv->count == 3);
    CHECK(argv && strcmp(argv->child->next->str, "-c") == 0);
    CHECK(pyro_json_get(v, "stdin")->boolean);
    CHECK(pyro_json_get(v, "n")->type == PYRO_JSON_NULL);
    CHECK(pyro_json_get(v, "t")->is_int && pyro_json_get(v, "t")->integer == -12);
    CHECK(strcmp(pyro_json_get(pyro_json_get(v, "env"), "A")->str, "1") == 0);
    CHECK(pyro_json_get(v, "missing") == NULL);
    CHECK(pyro_json_get(pyro_json_get(v, "argv"), "sh") == NULL);
}

static void decodes_escapes(void)
{
    const struct pyro_json_value *v =
        parse("\"q\\\" b\\\\ s\\/ \\b\\f\\n\\r\\t \\u00e9 \\u20AC \\ud83d\\ude00\"");
    const char want[] = "q\" b\\ s/ \b\f\n\r\t \xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80";
    CHECK(v && v->len == sizeof want - 1 && memcmp(v->str, want, v->len) == 0);
    v = parse("\"a\\u0000b\"");
    CHECK(v && v->len == 3 && v->str[1] == '\0' && !pyro_json_is_cstring(v));
    v = parse("\"raw \xC3\xA9 \xF0\x9F\x98\x80\"");
    CHECK(v && pyro_json_is_cstring(v) && v->len == 11);
}

static void numbers(void)
{
    const struct pyro_json_value *v = parse("[0,-0,9223372036854775807,-9223372036854775808,"
                                            "9223372036854775808,1.5,1e3,2E-2,-0.25e+1]");
    CHECK(v && v->count == 9);
    if (!v || v->count != 9)
        return;
    const struct pyro_json_value *n = v->child;
    CHECK(n->is_int && n->integer == 0);
    n = n->next;
    CHECK(n->is_int && n->integer == 0);
    n = n->next;
    CHECK(n->is_int && n->integer == INT64_MAX);
    n = n->next;
    CHECK(n->is_int && n->integer == INT64_MIN);
    n = n->next;
    CHECK(!n->is_int && n->number > 9.2e18); /* too big for int64: a double only */
    n = n->next;
    CHECK(!n->is_int && n->number == 1.5);
    n = n->next;
    CHECK(!n->is_int && n->number == 1000);
    n = n->next;
    CHECK(!n->is_int && n->number == 0.02);
    n = n->next;
    CHECK(!n->is_int && n->number == -2.5);
}

static void rejects_malformed_input(void)
{
    static const char *const bad[] = {
        "",
        " ",
        "{",
        "}",
        "[",
        "]",
        "[1,]",
        "{\"a\":1,}",
        "[,1]",
        "{,}",
        "01",
        "-01",
        "1.",
        ".5",
        "-",
        "1e",
        "1e+",
        "+1",
        "0x10",
        "NaN",
        "Infinity",
        "-Infinity",
        "tru",
        "nul",
        "fals",
        "truex",
        "[1 2]",
        "{\"a\" 1}",
        "{\"a\":}",
        "{1:2}",
        "{a:1}",
        "[]]",
        "{} x",
        "{}{}",
        "/* c */ {}",
        "{} // c",
        "'a'",
        "\"abc",
        "\"\\x\"",
        "\"\\u12\"",
        "\"\\u12g4\"",
        "\"\\ud800\"",
        "\"\\udc00\"",
        "\"\\ud800\\u0041\"",
        "\"\\ud800x\"",
        "\"tab\there\"",
        "\"nl\nhere\"",
        "\"\xC0\x80\"",
        "\"\xC3\"",
        "\"\xED\xA0\x80\"",
        "\"\xF5\x80\x80\x80\"",
        "\"\xF4\x90\x80\x80\"",
        "\"\xE0\x80\x80\"",
        "\"\x80\"",
        "\"\xFF\"",
        "{\"a\":1,\"a\":2}",
        "[\"\\",
        "\xEF\xBB\xBF{}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const struct pyro_json_value *v = parse(bad[i]);
        if (v)
            fprintf(stderr, "accepted malformed JSON #%zu: %s\n", i, bad[i]);
        CHECK(v == NULL);
        CHECK(parser.error[0] != '\0');
    }
    CHECK(parse_n("{}\0", 3) == NULL); /* a NUL after the value is trailing garbage */
}

static void enforces_limits(void)
{
    char deep[200];
    int d = PYRO_JSON_MAX_DEPTH;
    memset(deep, '[', (size_t)d + 1);
    memset(deep + d + 1, ']', (size_t)d + 1);
    CHECK(parse_n(deep, (size_t)(2 * d + 2)) != NULL); /* depths 0..32 */
    memset(deep, '[', (size_t)d + 2);
    memset(deep + d + 2, ']', (size_t)d + 2);
    CHECK(parse_n(deep, (size_t)(2 * d + 4)) == NULL);
    CHECK(strstr(parser.error, "nesting too deep") != NULL);

    char many[4 * MAX_VALUES];
    size_t n = 0;
    many[n++] = '[';
    for (int i = 0; i < MAX_VALUES; i++) {
        many[n++] = '1';
        many[n++] = ',';
    }
    many[n - 1] = ']';
    CHECK(parse_n(many, n) == NULL); /* MAX_VALUES elements + the array itself */
    CHECK(strstr(parser.error, "too many values") != NULL);

    static char huge[PYRO_MAX_CONTROL_BYTES + 2];
    memset(huge, ' ', sizeof huge);
    huge[0] = '1';
    CHECK(parse_n(huge, PYRO_MAX_CONTROL_BYTES) != NULL);
    CHECK(parse_n(huge, PYRO_MAX_CONTROL_BYTES + 1) == NULL);
}

static void writer_escapes(void)
{
    char buf[256];
    struct pyro_json_writer w;
    pyro_json_writer_init(&w, buf, sizeof buf);
    pyro_json_object_begin(&w);
    pyro_json_key(&w, "s");
    pyro_json_string_n(&w, "a\"b\\c\n\t\x01\x7f\xC3\xA9\xFFz\0", 14);
    pyro_json_key(&w, "k\"ey");
    pyro_json_array_begin(&w);
    pyro_json_int(&w, INT64_MIN);
    pyro_json_bool(&w, true);
    pyro_json_bool(&w, false);
    pyro_json_null(&w);
    pyro_json_array_begin(&w);
    pyro_json_array_end(&w);
    pyro_json_object_begin(&w);
    pyro_json_object_end(&w);
    pyro_json_array_end(&w);
    pyro_json_object_end(&w);
    long len = pyro_json_finish(&w);
    const char want[] = "{\"s\":\"a\\\"b\\\\c\\n\\t\\u0001\x7f\xC3\xA9\xEF\xBF\xBDz\\u0000\","
                        "\"k\\\"ey\":[-9223372036854775808,true,false,null,[],{}]}";
    CHECK(len == (long)sizeof want - 1 && memcmp(buf, want, sizeof want - 1) == 0);
    /* What the writer produces, the parser accepts. */
    const struct pyro_json_value *v = parse_n(buf, (size_t)len);
    CHECK(v && v->count == 2);
    CHECK(v && pyro_json_get(v, "s")->len == 14 - 1 + 3); /* \xFF became U+FFFD, 3 bytes */
}

static void writer_detects_overflow_and_imbalance(void)
{
    char buf[8];
    struct pyro_json_writer w;
    pyro_json_writer_init(&w, buf, sizeof buf);
    pyro_json_string(&w, "longer than eight");
    CHECK(pyro_json_finish(&w) == -1);
    pyro_json_writer_init(&w, buf, sizeof buf);
    pyro_json_object_begin(&w);
    CHECK(pyro_json_finish(&w) == -1);
    pyro_json_writer_init(&w, buf, sizeof buf);
    pyro_json_object_end(&w);
    CHECK(pyro_json_finish(&w) == -1);
    pyro_json_writer_init(&w, buf, sizeof buf);
    pyro_json_object_begin(&w);
    pyro_json_key(&w, "a");
    pyro_json_int(&w, 1);
    pyro_json_object_end(&w);
    CHECK(pyro_json_finish(&w) == 7 && memcmp(buf, "{\"a\":1}", 7) == 0);
}

void test_json(void)
{
    parses_a_request();
    decodes_escapes();
    numbers();
    rejects_malformed_input();
    enforces_limits();
    writer_escapes();
    writer_detects_overflow_and_imbalance();
}
