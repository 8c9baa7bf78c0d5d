/* json.h: the little JSON a C plugin needs, without a library: read one
 * string member of the arguments object, and build a result object with
 * properly escaped strings. */
#ifndef C_PHONETIC_JSON_H
#define C_PHONETIC_JSON_H

#include <stdbool.h>
#include <stddef.h>

/* What json_get_string found. */
typedef enum {
    JSON_FOUND,      /* *out holds the decoded string (malloc'd, NUL-terminated) */
    JSON_MISSING,    /* the object has no such member */
    JSON_NOT_STRING, /* the member is not a string */
    JSON_MALFORMED,  /* the text is not a JSON object */
} json_status;

/* Looks up member `key` of the JSON object in text[0..len). */
json_status json_get_string(const char *text, size_t len, const char *key, char **out, size_t *out_len);

/* A growable, NUL-terminated output buffer; `data` is malloc'd. */
typedef struct {
    char *data;
    size_t len, cap;
} json_buf;

void buf_append(json_buf *b, const char *s, size_t n);
void buf_puts(json_buf *b, const char *s);
/* Appends `s` as a JSON string literal, quotes and escapes included. */
void buf_json_string(json_buf *b, const char *s, size_t n);

#endif
