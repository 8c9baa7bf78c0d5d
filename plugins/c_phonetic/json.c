/* json.c: see json.h. A strict reader of one level of a JSON object (nested
 * values are skipped, not interpreted) and an escaping writer. */
#include "json.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *p, *end;
} cursor;

static void skip_ws(cursor *c) {
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r')) c->p++;
}

static int hex(char ch) {
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

static bool read_u16(cursor *c, uint32_t *out) {
    if (c->end - c->p < 4) return false;
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hex(c->p[i]);
        if (h < 0) return false;
        v = v * 16 + (uint32_t)h;
    }
    c->p += 4;
    *out = v;
    return true;
}

static void put_utf8(json_buf *b, uint32_t cp) {
    char s[4];
    size_t n;
    if (cp < 0x80) { s[0] = (char)cp; n = 1; }
    else if (cp < 0x800) { s[0] = (char)(0xC0 | cp >> 6); s[1] = (char)(0x80 | (cp & 0x3F)); n = 2; }
    else if (cp < 0x10000) {
        s[0] = (char)(0xE0 | cp >> 12); s[1] = (char)(0x80 | ((cp >> 6) & 0x3F)); s[2] = (char)(0x80 | (cp & 0x3F)); n = 3;
    } else {
        s[0] = (char)(0xF0 | cp >> 18); s[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        s[2] = (char)(0x80 | ((cp >> 6) & 0x3F)); s[3] = (char)(0x80 | (cp & 0x3F)); n = 4;
    }
    buf_append(b, s, n);
}

/* Reads a string literal at the cursor; decodes it into `out` when not NULL. */
static bool read_string(cursor *c, json_buf *out) {
    if (c->p >= c->end || *c->p != '"') return false;
    c->p++;
    while (c->p < c->end) {
        char ch = *c->p++;
        if (ch == '"') return true;
        if ((unsigned char)ch < 0x20) return false;
        if (ch != '\\') {
            if (out) buf_append(out, &ch, 1);
            continue;
        }
        if (c->p >= c->end) return false;
        char esc = *c->p++;
        const char *simple = strchr("\"\\/bfnrt", esc);
        if (esc && simple) {
            static const char decoded[] = "\"\\/\b\f\n\r\t";
            if (out) buf_append(out, &decoded[simple - "\"\\/bfnrt"], 1);
        } else if (esc == 'u') {
            uint32_t cp, low;
            if (!read_u16(c, &cp)) return false;
            if (cp >= 0xD800 && cp < 0xDC00) { /* a surrogate pair */
                if (c->end - c->p < 2 || c->p[0] != '\\' || c->p[1] != 'u') return false;
                c->p += 2;
                if (!read_u16(c, &low) || low < 0xDC00 || low > 0xDFFF) return false;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
            }
            if (out) put_utf8(out, cp);
        } else {
            return false;
        }
    }
    return false;
}

/* Skips any JSON value (object, array, string, number, literal). */
static bool skip_value(cursor *c, int depth) {
    skip_ws(c);
    if (c->p >= c->end || depth > 64) return false;
    char ch = *c->p;
    if (ch == '"') return read_string(c, NULL);
    if (ch == '{' || ch == '[') {
        char close = ch == '{' ? '}' : ']';
        c->p++;
        skip_ws(c);
        if (c->p < c->end && *c->p == close) { c->p++; return true; }
        for (;;) {
            if (ch == '{') {
                skip_ws(c);
                if (!read_string(c, NULL)) return false;
                skip_ws(c);
                if (c->p >= c->end || *c->p++ != ':') return false;
            }
            if (!skip_value(c, depth + 1)) return false;
            skip_ws(c);
            if (c->p >= c->end) return false;
            if (*c->p == ',') { c->p++; continue; }
            if (*c->p == close) { c->p++; return true; }
            return false;
        }
    }
    /* A number or a literal: the characters they may be made of. */
    const char *start = c->p;
    while (c->p < c->end && strchr("0123456789+-.eEtruefalsn", *c->p)) c->p++;
    return c->p > start;
}

json_status json_get_string(const char *text, size_t len, const char *key, char **out, size_t *out_len) {
    cursor c = {text, text + len};
    json_status status = JSON_MISSING;
    json_buf name = {0}, value = {0};
    skip_ws(&c);
    if (c.p >= c.end || *c.p++ != '{') return JSON_MALFORMED;
    skip_ws(&c);
    if (c.p < c.end && *c.p == '}') c.p++;
    else for (;;) {
        name.len = 0;
        buf_append(&name, "", 0);
        skip_ws(&c);
        if (!read_string(&c, &name)) goto malformed;
        skip_ws(&c);
        if (c.p >= c.end || *c.p++ != ':') goto malformed;
        skip_ws(&c);
        bool wanted = strlen(key) == name.len && memcmp(name.data, key, name.len) == 0;
        if (wanted && c.p < c.end && *c.p == '"') {
            value.len = 0;
            buf_append(&value, "", 0);
            if (!read_string(&c, &value)) goto malformed;
            status = JSON_FOUND;
        } else {
            if (!skip_value(&c, 0)) goto malformed;
            if (wanted) status = JSON_NOT_STRING;
        }
        skip_ws(&c);
        if (c.p < c.end && *c.p == ',') { c.p++; continue; }
        if (c.p < c.end && *c.p == '}') { c.p++; break; }
        goto malformed;
    }
    skip_ws(&c);
    if (c.p != c.end) goto malformed;
    free(name.data);
    if (status == JSON_FOUND) {
        *out = value.data;
        *out_len = value.len;
    } else {
        free(value.data);
    }
    return status;
malformed:
    free(name.data);
    free(value.data);
    return JSON_MALFORMED;
}

void buf_append(json_buf *b, const char *s, size_t n) {
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + n + 1) cap *= 2;
        char *grown = realloc(b->data, cap);
        if (!grown) abort(); /* a trap: Switchboard reports the call as crashed */
        b->data = grown;
        b->cap = cap;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void buf_puts(json_buf *b, const char *s) { buf_append(b, s, strlen(s)); }

void buf_json_string(json_buf *b, const char *s, size_t n) {
    buf_append(b, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '"' || ch == '\\') {
            char esc[2] = {'\\', (char)ch};
            buf_append(b, esc, 2);
        } else if (ch < 0x20) {
            static const char digits[] = "0123456789abcdef";
            char esc[6] = {'\\', 'u', '0', '0', digits[ch >> 4], digits[ch & 15]};
            buf_append(b, esc, 6);
        } else {
            buf_append(b, (const char *)&s[i], 1);
        }
    }
    buf_append(b, "\"", 1);
}
