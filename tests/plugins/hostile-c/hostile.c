// A `filter` plugin that misbehaves on purpose, for host/tests/languages.rs.
//
// What it does depends on the event's payload (plain text):
//   trap     executes `unreachable` (__builtin_trap): the call traps
//   abort    writes a message to stderr, then calls abort()
//   invalid  fails the event with `invalid`
//   probe    tries the environment and files, and fails the event with
//            `invalid` and a report of what it saw
//   other    keeps the event

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "filter.h"

bool exports_filter_init(filter_string_t *settings, filter_string_t *err) {
  (void)err;
  filter_string_free(settings);
  return true;
}

static bool is(const filter_list_u8_t *data, const char *word) {
  return data->len == strlen(word) && memcmp(data->ptr, word, data->len) == 0;
}

static void fail(filter_result_bool_failure_t *r, const char *message) {
  r->is_err = true;
  r->val.err.tag = SLUICE_PLUGIN_TYPES_FAILURE_INVALID;
  filter_string_dup(&r->val.err.val.invalid, message);
}

void exports_filter_filter(filter_list_event_t *batch, filter_list_result_bool_failure_t *ret) {
  ret->len = batch->len;
  ret->ptr = calloc(batch->len ? batch->len : 1, sizeof *ret->ptr);
  for (size_t i = 0; i < batch->len; i++) {
    const filter_list_u8_t *data = &batch->ptr[i].data;
    filter_result_bool_failure_t *r = &ret->ptr[i];
    if (is(data, "trap")) {
      __builtin_trap();
    } else if (is(data, "abort")) {
      fprintf(stderr, "hostile-c: giving up on sequence number %.*s\n",
              (int)batch->ptr[i].sequence_number.len, batch->ptr[i].sequence_number.ptr);
      abort();
    } else if (is(data, "invalid")) {
      fail(r, "hostile-c says this event is invalid");
    } else if (is(data, "probe")) {
      char report[512];
      const char *home = getenv("HOME");
      FILE *f = fopen("/etc/passwd", "r");
      int open_errno = f ? 0 : errno;
      if (f) fclose(f);
      snprintf(report, sizeof report, "{\"HOME\":\"%s\",\"/etc/passwd\":\"%s\"}", home ? home : "(unset)",
               f ? "opened" : strerror(open_errno));
      fail(r, report);
    } else {
      r->is_err = false;
      r->val.ok = true;
    }
  }
  filter_list_event_free(batch);
}
