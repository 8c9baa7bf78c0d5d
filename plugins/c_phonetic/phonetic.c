/* c_phonetic: two tools for reading codes and numbers over the phone.
 *
 * - spell_phonetic {text}: "B7-K" -> "B as in Bravo, 7, dash, K as in Kilo",
 *   so the assistant can read a booking reference unambiguously;
 * - check_number {number}: the Luhn check digit of a card, loyalty or account
 *   number the caller read out, so a misheard digit is caught at once.
 *
 * A Switchboard component plugin in C: wit-bindgen generates the bindings of
 * the WIT world `tool-plugin` (tool_plugin.h), zig cc compiles for
 * wasm32-wasi, and wasm-tools makes the component (plugins/build.sh c). See
 * docs/plugins/c.md.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "tool_plugin.h"

typedef exports_switchboard_plugin_tools_tool_error_t tool_error;

static const char *const NATO[26] = {
    "Alfa", "Bravo", "Charlie", "Delta", "Echo", "Foxtrot", "Golf", "Hotel", "India",
    "Juliett", "Kilo", "Lima", "Mike", "November", "Oscar", "Papa", "Quebec", "Romeo",
    "Sierra", "Tango", "Uniform", "Victor", "Whiskey", "X-ray", "Yankee", "Zulu",
};

static const char SPELL_SCHEMA[] =
    "{\"type\":\"object\",\"additionalProperties\":false,\"required\":[\"text\"],"
    "\"properties\":{\"text\":{\"type\":\"string\",\"maxLength\":64,"
    "\"description\":\"The code to spell, e.g. a booking reference like B7K-29\"}}}";

static const char CHECK_SCHEMA[] =
    "{\"type\":\"object\",\"additionalProperties\":false,\"required\":[\"number\"],"
    "\"properties\":{\"number\":{\"type\":\"string\","
    "\"description\":\"The number as the caller read it; spaces and dashes are ignored\"}}}";

/* Sets `err` to variant `tag` with a copy of `message`; returns false, the
 * value `call` returns on failure. */
static bool fail(tool_error *err, uint8_t tag, const char *message) {
    err->tag = tag;
    /* The three cases share one layout: a string. */
    tool_plugin_string_dup(&err->val.failed, message);
    return false;
}

/* The string argument `key`, or false with `err` set. */
static bool string_argument(tool_plugin_string_t *arguments, const char *key, char **value, size_t *len,
                            tool_error *err) {
    char message[128];
    switch (json_get_string((const char *)arguments->ptr, arguments->len, key, value, len)) {
        case JSON_FOUND:
            return true;
        case JSON_MISSING:
            snprintf(message, sizeof message, "\"%s\" is required", key);
            break;
        case JSON_NOT_STRING:
            snprintf(message, sizeof message, "\"%s\" must be a string", key);
            break;
        default:
            snprintf(message, sizeof message, "the arguments are not a JSON object");
            break;
    }
    return fail(err, SWITCHBOARD_PLUGIN_TYPES_TOOL_ERROR_INVALID_ARGUMENTS, message);
}

/* The spoken form of one character (ASCII), or NULL to skip it. */
static const char *word_for(char ch, char scratch[32]) {
    if (isalpha((unsigned char)ch)) {
        char upper = (char)toupper((unsigned char)ch);
        snprintf(scratch, 32, "%c as in %s", upper, NATO[upper - 'A']);
        return scratch;
    }
    switch (ch) {
        case ' ': return NULL;
        case '-': return "dash";
        case '.': return "dot";
        case '/': return "slash";
        case '_': return "underscore";
        case '@': return "at";
        case '+': return "plus";
        case '#': return "hash";
        default:
            scratch[0] = ch;
            scratch[1] = '\0';
            return scratch;
    }
}

static bool spell_phonetic(tool_plugin_string_t *arguments, tool_plugin_string_t *ret, tool_error *err) {
    char *text;
    size_t len;
    if (!string_argument(arguments, "text", &text, &len, err)) return false;
    json_buf spoken = {0}, out = {0};
    int characters = 0;
    for (size_t i = 0; i < len;) {
        unsigned char ch = (unsigned char)text[i];
        /* A multi-byte UTF-8 character is said as it is. */
        size_t n = ch < 0x80 ? 1 : ch < 0xE0 ? 2 : ch < 0xF0 ? 3 : 4;
        if (n > len - i) n = len - i;
        char scratch[32];
        const char *word = n == 1 ? word_for((char)ch, scratch) : NULL;
        if (n == 1 && !word) {
            i++;
            continue;
        }
        if (characters++ > 0) buf_puts(&spoken, ", ");
        if (word) buf_puts(&spoken, word);
        else buf_append(&spoken, text + i, n);
        i += n;
    }
    free(text);
    if (characters == 0) {
        free(spoken.data);
        return fail(err, SWITCHBOARD_PLUGIN_TYPES_TOOL_ERROR_INVALID_ARGUMENTS, "\"text\" has nothing to spell");
    }
    char count[32];
    snprintf(count, sizeof count, ",\"characters\":%d}", characters);
    buf_puts(&out, "{\"spoken\":");
    buf_json_string(&out, spoken.data, spoken.len);
    buf_puts(&out, count);
    free(spoken.data);
    /* The result string is freed by the bindings after Switchboard read it. */
    ret->ptr = (uint8_t *)out.data;
    ret->len = out.len;
    return true;
}

static bool check_number(tool_plugin_string_t *arguments, tool_plugin_string_t *ret, tool_error *err) {
    char *number;
    size_t len;
    if (!string_argument(arguments, "number", &number, &len, err)) return false;
    char digits[64];
    size_t count = 0;
    bool ok = true;
    for (size_t i = 0; i < len && ok; i++) {
        if (isdigit((unsigned char)number[i])) {
            if (count < sizeof digits) digits[count] = number[i];
            count++;
        } else if (number[i] != ' ' && number[i] != '-') {
            ok = false;
        }
    }
    free(number);
    if (!ok) {
        return fail(err, SWITCHBOARD_PLUGIN_TYPES_TOOL_ERROR_INVALID_ARGUMENTS,
                    "\"number\" may hold only digits, spaces and dashes");
    }
    if (count < 2 || count > sizeof digits) {
        return fail(err, SWITCHBOARD_PLUGIN_TYPES_TOOL_ERROR_INVALID_ARGUMENTS, "\"number\" must have 2 to 64 digits");
    }
    /* Luhn: double every second digit from the right. */
    int sum = 0;
    for (size_t i = 0; i < count; i++) {
        int d = digits[count - 1 - i] - '0';
        if (i % 2 == 1) d = d * 2 > 9 ? d * 2 - 9 : d * 2;
        sum += d;
    }
    char result[128];
    snprintf(result, sizeof result, "{\"valid\":%s,\"digits\":%zu,\"last_four\":\"%.*s\"}", sum % 10 == 0 ? "true" : "false",
             count, (int)(count < 4 ? count : 4), digits + (count < 4 ? 0 : count - 4));
    tool_plugin_string_dup(ret, result);
    return true;
}

/* The `list` function of the `tools` interface. */
void exports_switchboard_plugin_tools_list(exports_switchboard_plugin_tools_list_tool_definition_t *ret) {
    ret->len = 2;
    ret->ptr = calloc(2, sizeof *ret->ptr);
    tool_plugin_string_dup(&ret->ptr[0].name, "spell_phonetic");
    tool_plugin_string_dup(&ret->ptr[0].description,
                           "Spell a code or reference in the NATO phonetic alphabet (B as in Bravo), "
                           "ready to read to the caller.");
    tool_plugin_string_dup(&ret->ptr[0].parameters_schema, SPELL_SCHEMA);
    tool_plugin_string_dup(&ret->ptr[1].name, "check_number");
    tool_plugin_string_dup(&ret->ptr[1].description,
                           "Check the Luhn check digit of a card, loyalty or account number the caller read "
                           "out, to catch a misheard digit.");
    tool_plugin_string_dup(&ret->ptr[1].parameters_schema, CHECK_SCHEMA);
}

/* The `call` function: true with `ret` set, or false with `err` set. The
 * arguments are ours to free. */
bool exports_switchboard_plugin_tools_call(tool_plugin_string_t *name, tool_plugin_string_t *arguments,
                                           exports_switchboard_plugin_tools_call_context_t *context,
                                           tool_plugin_string_t *ret, tool_error *err) {
    bool ok;
    if (name->len == 14 && memcmp(name->ptr, "spell_phonetic", 14) == 0) {
        ok = spell_phonetic(arguments, ret, err);
    } else if (name->len == 12 && memcmp(name->ptr, "check_number", 12) == 0) {
        ok = check_number(arguments, ret, err);
    } else {
        ok = fail(err, SWITCHBOARD_PLUGIN_TYPES_TOOL_ERROR_FAILED, "unknown tool");
    }
    tool_plugin_string_free(name);
    tool_plugin_string_free(arguments);
    exports_switchboard_plugin_tools_call_context_free(context);
    return ok;
}
