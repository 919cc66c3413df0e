// Example `filter` plugin in C: keeps events whose JSON field matches a value.
//
// The same behaviour as the Rust `plugins/filter-field`, on the same WIT
// (`sluice:plugin/filter`). Settings (the step's `config` table):
//
//   field            path of the field: `type`, `user.country` or a JSON Pointer `/user/country`
//   equals           keep events whose field equals this value (a string, number, bool or null)
//   one_of           keep events whose field equals one of these values (instead of `equals`)
//   negate           true inverts the match (default false)
//   keep_if_missing  what to do when the field is absent (default false: drop)
//
// A payload that is not JSON fails with `invalid`. `filter.h` is generated
// from the WIT by `sluice build` (wit-bindgen's C generator); see README.md.

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "filter.h"
#include "json.h"

#define MAX_SEGMENTS 32
#define MAX_VALUES 64

static char *settings_text;                  // owns the spans below
static json_span_t segments[MAX_SEGMENTS];   // the field path, decoded
static size_t segment_count;
static json_span_t values[MAX_VALUES];       // the values to match (raw JSON)
static size_t value_count;
static bool negate, keep_if_missing;

static bool fail_init(filter_string_t *err, const char *message) {
  filter_string_dup(err, message);
  return false;
}

static void log_debug(const char *message) {
  filter_string_t text;
  filter_string_set(&text, message);
  sluice_plugin_log_log(SLUICE_PLUGIN_LOG_LEVEL_DEBUG, &text);
}

// Splits `a.b` or a JSON Pointer `/a/b` (`~1` is `/`, `~0` is `~`) into segments, in place.
static bool parse_path(char *path, filter_string_t *err) {
  char sep = '.';
  if (*path == '/') {
    sep = '/';
    path++;
  }
  segment_count = 0;
  for (char *start = path;;) {
    char *end = strchr(start, sep);
    size_t len = end ? (size_t)(end - start) : strlen(start);
    if (segment_count == MAX_SEGMENTS) return fail_init(err, "`field` has too many segments");
    if (sep == '/') {  // unescape ~1 and ~0 in place
      size_t w = 0;
      for (size_t r = 0; r < len; r++, w++) {
        if (start[r] == '~' && r + 1 < len && (start[r + 1] == '1' || start[r + 1] == '0')) {
          start[w] = start[r + 1] == '1' ? '/' : '~';
          r++;
        } else {
          start[w] = start[r];
        }
      }
      len = w;
    }
    segments[segment_count++] = (json_span_t){(const uint8_t *)start, len};
    if (!end) break;
    start = end + 1;
  }
  return true;
}

static bool is_scalar(json_span_t v) {
  return v.len > 0 && v.ptr[0] != '{' && v.ptr[0] != '[';
}

bool exports_filter_init(filter_string_t *settings, filter_string_t *err) {
  free(settings_text);
  settings_text = malloc(settings->len + 1);
  memcpy(settings_text, settings->ptr, settings->len);
  settings_text[settings->len] = 0;
  filter_string_free(settings);

  json_span_t doc = {(const uint8_t *)settings_text, strlen(settings_text)};
  json_span_t field = {0}, equals = {0}, one_of = {0}, key, value;
  bool has_field = false, has_equals = false, has_one_of = false;
  negate = keep_if_missing = false;
  json_members_t members;
  if (!json_members(doc, &members)) return fail_init(err, "settings are not a JSON object");
  while (json_next_member(&members, &key, &value)) {
    if (json_key_is(key, "field")) field = value, has_field = true;
    else if (json_key_is(key, "equals")) equals = value, has_equals = true;
    else if (json_key_is(key, "one_of")) one_of = value, has_one_of = true;
    else if (json_key_is(key, "negate")) negate = json_is_true(value);
    else if (json_key_is(key, "keep_if_missing")) keep_if_missing = json_is_true(value);
    else return fail_init(err, "unknown setting (expected field, equals, one_of, negate, keep_if_missing)");
  }
  if (!has_field || field.ptr[0] != '"') return fail_init(err, "missing `field` (a string)");
  // Decode the path string in place: it only ever gets shorter.
  size_t len = json_decode_string(field, (uint8_t *)field.ptr);
  ((char *)field.ptr)[len] = 0;
  if (len == 0) return fail_init(err, "`field` must not be empty");
  if (!parse_path((char *)field.ptr, err)) return false;

  value_count = 0;
  if (has_equals && has_one_of) return fail_init(err, "set `equals` or `one_of`, not both");
  if (has_equals) {
    values[value_count++] = equals;
  } else if (has_one_of) {
    json_items_t items;
    if (!json_items(one_of, &items)) return fail_init(err, "`one_of` must be a list");
    while (json_next_item(&items, &value)) {
      if (value_count == MAX_VALUES) return fail_init(err, "`one_of` lists too many values");
      values[value_count++] = value;
    }
    if (value_count == 0) return fail_init(err, "`one_of` must list at least one value");
  } else {
    return fail_init(err, "missing `equals` (or `one_of`)");
  }
  for (size_t i = 0; i < value_count; i++) {
    if (!is_scalar(values[i])) return fail_init(err, "this plugin matches strings, numbers, booleans and null only");
  }
  log_debug("filter-field (C) ready");
  return true;
}

static void invalid(filter_result_bool_failure_t *r, const char *what, size_t at) {
  char message[160];
  snprintf(message, sizeof message, "payload is not the expected JSON: %s at byte %zu", what, at);
  r->is_err = true;
  r->val.err.tag = SLUICE_PLUGIN_TYPES_FAILURE_INVALID;
  filter_string_dup(&r->val.err.val.invalid, message);
}

void exports_filter_filter(filter_list_event_t *batch, filter_list_result_bool_failure_t *ret) {
  ret->len = batch->len;
  ret->ptr = calloc(batch->len ? batch->len : 1, sizeof *ret->ptr);
  for (size_t i = 0; i < batch->len; i++) {
    filter_result_bool_failure_t *r = &ret->ptr[i];
    json_span_t payload = {batch->ptr[i].data.ptr, batch->ptr[i].data.len};
    json_span_t found;
    json_error_t error;
    int hit = json_find(payload, segments, segment_count, &found, &error);
    if (hit < 0) {
      invalid(r, error.what, error.at);
      continue;
    }
    bool keep;
    if (hit == 0) {
      keep = keep_if_missing;
    } else {
      bool matched = false;
      for (size_t v = 0; v < value_count && !matched; v++) matched = json_scalar_equal(found, values[v]);
      keep = matched != negate;
    }
    r->is_err = false;
    r->val.ok = keep;
  }
  // The callee owns its arguments.
  filter_list_event_free(batch);
}
