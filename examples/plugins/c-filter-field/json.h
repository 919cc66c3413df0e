// A small validating JSON scanner: finds one field in a payload without
// building a tree, and walks the (trusted) settings object. No allocation
// except for keys longer than 256 bytes.
#ifndef SLUICE_JSON_H
#define SLUICE_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

// Bytes of a JSON text (a value, or a decoded path segment).
typedef struct {
  const uint8_t *ptr;
  size_t len;
} json_span_t;

// Why a text is not JSON, and the byte offset where that was found.
typedef struct {
  const char *what;
  size_t at;
} json_error_t;

// Validates `doc` and finds the value at `segments` (object keys or array
// indices): 1 and the value's raw text in `out` if it is there, 0 if not, -1
// and `err` if `doc` is not JSON. A repeated key: the last one wins.
int json_find(json_span_t doc, const json_span_t *segments, size_t count, json_span_t *out,
              json_error_t *err);

// Iterates the members of an object (from a trusted document).
typedef struct {
  const uint8_t *p, *end;
  bool first;
} json_members_t;
bool json_members(json_span_t object, json_members_t *it);
bool json_next_member(json_members_t *it, json_span_t *key, json_span_t *value);

// Iterates the items of an array (from a trusted document).
typedef json_members_t json_items_t;
bool json_items(json_span_t array, json_items_t *it);
bool json_next_item(json_items_t *it, json_span_t *value);

// Whether a raw key (with its quotes) decodes to `name`.
bool json_key_is(json_span_t key, const char *name);
// Whether a raw value is `true`.
bool json_is_true(json_span_t value);
// Decodes a raw string (with its quotes) into `out` (which may be `s.ptr`);
// returns the decoded length.
size_t json_decode_string(json_span_t s, uint8_t *out);
// Whether two raw scalars are the same JSON value (strings compared decoded;
// an integer never equals a number with a fraction or exponent, as in serde_json).
bool json_scalar_equal(json_span_t a, json_span_t b);

#endif
