// See json.h.
#include "json.h"

#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 128

typedef struct {
  const uint8_t *p, *start, *end;
  json_error_t *err;
} scan_t;

static bool fail(scan_t *s, const char *what) {
  s->err->what = what;
  s->err->at = (size_t)(s->p - s->start);
  return false;
}

static void ws(scan_t *s) {
  while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r')) s->p++;
}

static bool peek(scan_t *s, uint8_t c) { return s->p < s->end && *s->p == c; }

static int hex(uint8_t c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// One UTF-8 sequence whose lead byte (>= 0x80) was just read.
static bool utf8(scan_t *s, uint8_t lead) {
  size_t more = lead >= 0xC2 && lead <= 0xDF ? 1 : lead >= 0xE0 && lead <= 0xEF ? 2 : lead >= 0xF0 && lead <= 0xF4 ? 3 : 0;
  if (more == 0) return fail(s, "invalid UTF-8");
  for (size_t i = 0; i < more; i++, s->p++) {
    if (s->p >= s->end || (*s->p & 0xC0) != 0x80) return fail(s, "invalid UTF-8");
  }
  return true;
}

static bool string(scan_t *s) {
  s->p++;  // the opening quote
  while (s->p < s->end) {
    uint8_t c = *s->p++;
    if (c == '"') return true;
    if (c == '\\') {
      if (s->p >= s->end) break;
      c = *s->p++;
      if (c == 'u') {
        for (int i = 0; i < 4; i++, s->p++) {
          if (s->p >= s->end || hex(*s->p) < 0) return fail(s, "invalid \\u escape");
        }
      } else if (!strchr("\"\\/bfnrt", c)) {
        return fail(s, "invalid escape");
      }
    } else if (c < 0x20) {
      return fail(s, "control character in a string");
    } else if (c >= 0x80 && !utf8(s, c)) {
      return false;
    }
  }
  return fail(s, "unterminated string");
}

static bool digits(scan_t *s) {
  const uint8_t *from = s->p;
  while (s->p < s->end && *s->p >= '0' && *s->p <= '9') s->p++;
  return s->p > from;
}

static bool number(scan_t *s) {
  if (peek(s, '-')) s->p++;
  if (peek(s, '0')) s->p++;
  else if (!digits(s)) return fail(s, "invalid number");
  if (peek(s, '.')) {
    s->p++;
    if (!digits(s)) return fail(s, "invalid number");
  }
  if (peek(s, 'e') || peek(s, 'E')) {
    s->p++;
    if (peek(s, '+') || peek(s, '-')) s->p++;
    if (!digits(s)) return fail(s, "invalid number");
  }
  return true;
}

static bool literal(scan_t *s, const char *word) {
  size_t n = strlen(word);
  if ((size_t)(s->end - s->p) < n || memcmp(s->p, word, n) != 0) return fail(s, "expected a value");
  s->p += n;
  return true;
}

static bool walk(scan_t *s, const json_span_t *segs, size_t n, json_span_t *out, bool *found, int depth);

// Skips one value.
static bool value(scan_t *s, int depth) {
  bool found = false;
  json_span_t ignored;
  return walk(s, NULL, (size_t)-1, &ignored, &found, depth);
}

static bool key_matches(json_span_t key, json_span_t want) {
  uint8_t small[256];
  uint8_t *buf = key.len <= sizeof small ? small : malloc(key.len);
  size_t len = json_decode_string(key, buf);
  bool same = len == want.len && memcmp(buf, want.ptr, len) == 0;
  if (buf != small) free(buf);
  return same;
}

static bool index_of(json_span_t seg, size_t *index) {
  if (seg.len == 0 || seg.len > 18) return false;
  size_t v = 0;
  for (size_t i = 0; i < seg.len; i++) {
    if (seg.ptr[i] < '0' || seg.ptr[i] > '9') return false;
    v = v * 10 + (seg.ptr[i] - '0');
  }
  *index = v;
  return true;
}

// Parses one value; `n` segments still to follow (`(size_t)-1`: just skip).
static bool walk(scan_t *s, const json_span_t *segs, size_t n, json_span_t *out, bool *found, int depth) {
  ws(s);
  if (depth > MAX_DEPTH) return fail(s, "nested too deeply");
  if (s->p >= s->end) return fail(s, "unexpected end of input");
  if (n == 0) {
    const uint8_t *from = s->p;
    if (!value(s, depth)) return false;
    *out = (json_span_t){from, (size_t)(s->p - from)};
    *found = true;
    return true;
  }
  bool seek = n != (size_t)-1;
  switch (*s->p) {
    case '{':
      s->p++;
      ws(s);
      if (peek(s, '}')) return s->p++, true;
      for (;;) {
        ws(s);
        if (!peek(s, '"')) return fail(s, "expected a key");
        const uint8_t *k = s->p;
        if (!string(s)) return false;
        json_span_t key = {k, (size_t)(s->p - k)};
        ws(s);
        if (!peek(s, ':')) return fail(s, "expected `:`");
        s->p++;
        if (seek && key_matches(key, segs[0])) {
          bool hit = false;
          json_span_t at;
          if (!walk(s, segs + 1, n - 1, &at, &hit, depth + 1)) return false;
          *found = hit;  // the last of repeated keys wins
          if (hit) *out = at;
        } else if (!value(s, depth + 1)) {
          return false;
        }
        ws(s);
        if (peek(s, ',')) {
          s->p++;
          continue;
        }
        if (peek(s, '}')) return s->p++, true;
        return fail(s, "expected `,` or `}`");
      }
    case '[': {
      size_t want = 0;
      bool by_index = seek && index_of(segs[0], &want);
      s->p++;
      ws(s);
      if (peek(s, ']')) return s->p++, true;
      for (size_t i = 0;; i++) {
        if (by_index && i == want) {
          bool hit = false;
          json_span_t at;
          if (!walk(s, segs + 1, n - 1, &at, &hit, depth + 1)) return false;
          *found = hit;
          if (hit) *out = at;
        } else if (!value(s, depth + 1)) {
          return false;
        }
        ws(s);
        if (peek(s, ',')) {
          s->p++;
          continue;
        }
        if (peek(s, ']')) return s->p++, true;
        return fail(s, "expected `,` or `]`");
      }
    }
    case '"': return string(s);
    case 't': return literal(s, "true");
    case 'f': return literal(s, "false");
    case 'n': return literal(s, "null");
    default:
      if (*s->p == '-' || (*s->p >= '0' && *s->p <= '9')) return number(s);
      return fail(s, "expected a value");
  }
}

int json_find(json_span_t doc, const json_span_t *segments, size_t count, json_span_t *out,
              json_error_t *err) {
  scan_t s = {doc.ptr, doc.ptr, doc.ptr + doc.len, err};
  bool found = false;
  if (!walk(&s, segments, count, out, &found, 0)) return -1;
  ws(&s);
  if (s.p != s.end) {
    fail(&s, "trailing characters");
    return -1;
  }
  return found ? 1 : 0;
}

static bool open_span(json_span_t v, uint8_t c, json_members_t *it) {
  if (v.len < 2 || v.ptr[0] != c) return false;
  *it = (json_members_t){v.ptr + 1, v.ptr + v.len - 1, true};
  return true;
}

// The next comma-separated entry of a trusted object or array.
static bool next(json_members_t *it, json_span_t *key, json_span_t *out) {
  json_error_t err;
  scan_t s = {it->p, it->p, it->end, &err};
  ws(&s);
  if (!it->first) {
    if (!peek(&s, ',')) return false;
    s.p++;
    ws(&s);
  }
  if (s.p >= s.end) return false;
  if (key) {
    const uint8_t *k = s.p;
    if (!peek(&s, '"') || !string(&s)) return false;
    *key = (json_span_t){k, (size_t)(s.p - k)};
    ws(&s);
    if (!peek(&s, ':')) return false;
    s.p++;
    ws(&s);
  }
  const uint8_t *v = s.p;
  if (!value(&s, 1)) return false;
  *out = (json_span_t){v, (size_t)(s.p - v)};
  it->p = s.p;
  it->first = false;
  return true;
}

bool json_members(json_span_t object, json_members_t *it) { return open_span(object, '{', it); }
bool json_next_member(json_members_t *it, json_span_t *key, json_span_t *value) { return next(it, key, value); }
bool json_items(json_span_t array, json_items_t *it) { return open_span(array, '[', it); }
bool json_next_item(json_items_t *it, json_span_t *value) { return next(it, NULL, value); }

bool json_key_is(json_span_t key, const char *name) {
  return key_matches(key, (json_span_t){(const uint8_t *)name, strlen(name)});
}

bool json_is_true(json_span_t value) { return value.len == 4 && memcmp(value.ptr, "true", 4) == 0; }

static size_t put_utf8(uint8_t *out, uint32_t c) {
  if (c < 0x80) return out[0] = (uint8_t)c, 1;
  if (c < 0x800) return out[0] = 0xC0 | (c >> 6), out[1] = 0x80 | (c & 0x3F), 2;
  if (c < 0x10000) return out[0] = 0xE0 | (c >> 12), out[1] = 0x80 | ((c >> 6) & 0x3F), out[2] = 0x80 | (c & 0x3F), 3;
  out[0] = 0xF0 | (c >> 18), out[1] = 0x80 | ((c >> 12) & 0x3F), out[2] = 0x80 | ((c >> 6) & 0x3F), out[3] = 0x80 | (c & 0x3F);
  return 4;
}

static uint32_t hex4(const uint8_t *p) {
  return (uint32_t)(hex(p[0]) << 12 | hex(p[1]) << 8 | hex(p[2]) << 4 | hex(p[3]));
}

size_t json_decode_string(json_span_t s, uint8_t *out) {
  size_t w = 0;
  for (size_t r = 1; r + 1 < s.len; r++) {
    uint8_t c = s.ptr[r];
    if (c != '\\') {
      out[w++] = c;
      continue;
    }
    c = s.ptr[++r];
    switch (c) {
      case 'b': out[w++] = '\b'; break;
      case 'f': out[w++] = '\f'; break;
      case 'n': out[w++] = '\n'; break;
      case 'r': out[w++] = '\r'; break;
      case 't': out[w++] = '\t'; break;
      case 'u': {
        uint32_t cp = hex4(s.ptr + r + 1);
        r += 4;
        if (cp >= 0xD800 && cp < 0xDC00 && r + 6 < s.len && s.ptr[r + 1] == '\\' && s.ptr[r + 2] == 'u') {
          uint32_t lo = hex4(s.ptr + r + 3);
          if (lo >= 0xDC00 && lo < 0xE000) {
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            r += 6;
          }
        }
        w += put_utf8(out + w, cp);
        break;
      }
      default: out[w++] = c;  // " \ /
    }
  }
  return w;
}

static bool is_float(json_span_t v) {
  for (size_t i = 0; i < v.len; i++) {
    if (v.ptr[i] == '.' || v.ptr[i] == 'e' || v.ptr[i] == 'E') return true;
  }
  return false;
}

static double to_double(json_span_t v) {
  char buf[64];
  size_t n = v.len < sizeof buf - 1 ? v.len : sizeof buf - 1;
  memcpy(buf, v.ptr, n);
  buf[n] = 0;
  return strtod(buf, NULL);
}

bool json_scalar_equal(json_span_t a, json_span_t b) {
  if (a.len == 0 || b.len == 0) return false;
  if (a.ptr[0] == '"' && b.ptr[0] == '"') {
    uint8_t *da = malloc(a.len), *db = malloc(b.len);
    size_t la = json_decode_string(a, da), lb = json_decode_string(b, db);
    bool same = la == lb && memcmp(da, db, la) == 0;
    free(da);
    free(db);
    return same;
  }
  bool na = a.ptr[0] == '-' || (a.ptr[0] >= '0' && a.ptr[0] <= '9');
  bool nb = b.ptr[0] == '-' || (b.ptr[0] >= '0' && b.ptr[0] <= '9');
  if (na && nb && is_float(a) && is_float(b)) return to_double(a) == to_double(b);
  return a.len == b.len && memcmp(a.ptr, b.ptr, a.len) == 0;
}
