/* Requests: routes incoming frames to the handler table (ops.h), validates control
 * messages and sends replies.
 *
 * Every request channel ends with exactly one terminal frame (result, exit or error);
 * the helpers here produce the result and error ones. */
#ifndef PYRO_REQUEST_H
#define PYRO_REQUEST_H

#include "frame.h"
#include "json.h"
#include "transport.h"

#include <stdbool.h>
#include <stdint.h>

/* The closed set of error codes an `error` reply may carry (protocol/README.md). */
#define PYRO_ERR_INVALID_ARGUMENT "invalid_argument"
#define PYRO_ERR_NOT_FOUND "not_found"
#define PYRO_ERR_UNSUPPORTED "unsupported"
#define PYRO_ERR_BUSY "busy"
#define PYRO_ERR_INTERNAL "internal"

/* Service names and shell ids: ^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$. */
#define PYRO_NAME_MAX 64

/* Enough for the largest request: argv and env entries plus the containers. */
#define PYRO_JSON_MAX_VALUES 8192

/* An error reply: code is one of PYRO_ERR_*, err an errno value or 0 for none. */
struct pyro_error {
    const char *code;
    int err;
    char message[512];
};

__attribute__((format(printf, 4, 5))) void
pyro_error_set(struct pyro_error *e, const char *code, int err, const char *fmt, ...);

void pyro_request_frame(struct pyro_conn *conn, const struct pyro_frame_header *header,
                        const uint8_t *payload);

/* Forgets what a connection that went away had going: its execs' process groups are
 * killed (the process table decides by kind; services and shells live on), its pending
 * file_writes and replies discarded. No frames are sent. */
void pyro_request_drop_conn(struct pyro_conn *conn);

void pyro_send_error(struct pyro_conn *conn, uint32_t channel, const struct pyro_error *e);
/* Sends the document in w as a control frame (an internal error if it overflowed). */
void pyro_send_control(struct pyro_conn *conn, uint32_t channel, struct pyro_json_writer *w);
void pyro_send_result(struct pyro_conn *conn, uint32_t channel);
/* For a list op (it takes no field but "op"): starts a {"type":"result","KEY":[ reply in
 * buf; the caller adds the entries, ends the array and the object and sends it. False,
 * with the error sent, when the request has another field. */
bool pyro_list_begin(struct pyro_conn *conn, uint32_t channel,
                     const struct pyro_json_value *req, const char *op,
                     struct pyro_json_writer *w, char *buf, size_t cap, const char *key);
/* Starts a {"type":"result","KEY":"VALUE" reply in buf (a service name, a shell id); the
 * caller adds its fields, ends the object and sends it with pyro_send_control. */
void pyro_result_begin(struct pyro_json_writer *w, char *buf, size_t cap, const char *key,
                       const char *value);

/* Field helpers for request validation; on failure they fill e (invalid_argument)
 * with "OP: FIELD must be ..." and return false. An absent field leaves *out as is. */
bool pyro_fields_known(const struct pyro_json_value *req, const char *op,
                       const char *const *allowed, struct pyro_error *e);
bool pyro_field_bool(const struct pyro_json_value *req, const char *op, const char *field,
                     bool *out, struct pyro_error *e);
bool pyro_field_int(const struct pyro_json_value *req, const char *op, const char *field,
                    int64_t min, int64_t max, bool *present, int64_t *out,
                    struct pyro_error *e);
/* A required name field (PYRO_NAME_MAX, regex above) copied into out (PYRO_NAME_MAX + 1
 * bytes). */
bool pyro_field_name(const struct pyro_json_value *req, const char *op, const char *field,
                     char *out, struct pyro_error *e);
/* Whether s matches the name regex. */
bool pyro_name_valid(const char *s, size_t len);

#endif
