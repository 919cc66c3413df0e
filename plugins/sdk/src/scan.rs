//! The fast path of [`Path::find`](crate::json::Path::find) and
//! [`Path::spans`](crate::json::Path::spans): one validating pass over the
//! payload bytes, with no allocation and no `serde` visitor in between.
//!
//! Strings are skipped 16 bytes at a time with wasm's `simd128` (which the
//! plugin builds turn on), or 8 at a time in a `u64` without it; everything
//! else is a plain byte loop.
//!
//! The scanner never decides what `serde_json` would reject. It accepts
//! only what `serde_json` accepts too, with the same result, and gives up
//! ([`Unsure`]) on anything else: bad JSON, a key with escapes, a path that
//! meets a number or an escaped string on its way, nesting deeper than 128.
//! The caller then runs the `serde_json` walker, which gives the result or
//! the exact error it always gave. So the fast path changes speed, never an
//! answer; `json.rs`'s tests check that against `serde_json` on many
//! payloads, valid and broken.

use std::ops::Range;

use crate::json::{Path, Span};

/// The scanner cannot answer for sure: ask `serde_json`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Unsure;

type Scan<T> = Result<T, Unsure>;

/// The deepest nesting the scanner follows (as `serde_json`'s default
/// recursion limit); deeper payloads go to `serde_json`.
const MAX_DEPTH: u32 = 128;

/// The most paths [`spans`] follows at once (one bit each).
const MAX_PATHS: usize = 64;

/// The value at `segments` in `payload`, as [`Path::find`] finds it: the
/// last of repeated keys wins, a number segment indexes an array.
///
/// [`Path::find`]: crate::json::Path::find
pub(crate) fn find(segments: &[String], payload: &[u8]) -> Scan<Option<Range<usize>>> {
    let mut s = Scanner { b: payload, i: 0 };
    let found = s.walk(segments)?;
    s.end()?;
    Ok(found)
}

/// Where each of `paths` lies in `payload`, as [`Path::spans`] finds them.
/// At most [`MAX_PATHS`] paths.
pub(crate) fn spans(paths: &[Path], payload: &[u8]) -> Scan<Vec<Span>> {
    if paths.len() > MAX_PATHS {
        return Err(Unsure);
    }
    let mut found = Found {
        at: vec![None; paths.len()],
        unsure: 0,
    };
    let mut s = Scanner { b: payload, i: 0 };
    let all = if paths.len() == MAX_PATHS {
        u64::MAX
    } else {
        (1u64 << paths.len()) - 1
    };
    s.walks(paths, all, 0, &mut found)?;
    s.end()?;
    Ok(found
        .at
        .into_iter()
        .enumerate()
        .map(|(i, at)| match at {
            _ if found.unsure & (1 << i) != 0 => Span::Unsure,
            Some(at) => Span::At(at),
            None => Span::Absent,
        })
        .collect())
}

/// What [`spans`] found so far: a span per path, and the unsure paths.
struct Found {
    at: Vec<Option<Range<usize>>>,
    unsure: u64,
}

/// The paths (bits of `mask`) that end at `depth`, as a mask.
fn ending(paths: &[Path], mask: u64, depth: usize) -> u64 {
    bits(mask)
        .filter(|&i| paths[i].segments().len() == depth)
        .fold(0, |m, i| m | (1 << i))
}

/// The indexes of the bits set in `mask`, lowest first.
fn bits(mut mask: u64) -> impl Iterator<Item = usize> {
    std::iter::from_fn(move || {
        (mask != 0).then(|| {
            let i = mask.trailing_zeros() as usize;
            mask &= mask - 1;
            i
        })
    })
}

/// Where the first `"`, `\` or control character of `s` is: where a
/// string's plain text stops. With wasm's `simd128`, 16 bytes at a time.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
fn string_stop(s: &[u8]) -> Option<usize> {
    use core::arch::wasm32::{u8x16_bitmask, u8x16_eq, u8x16_lt, u8x16_splat, u64x2, v128_or};
    let mut chunks = s.chunks_exact(16);
    let mut at = 0;
    for c in &mut chunks {
        let (lo, hi) = c.split_at(8);
        let word = |w: &[u8]| u64::from_le_bytes(w.try_into().expect("8 bytes"));
        let v = u64x2(word(lo), word(hi));
        let stops = v128_or(
            v128_or(
                u8x16_eq(v, u8x16_splat(b'"')),
                u8x16_eq(v, u8x16_splat(b'\\')),
            ),
            u8x16_lt(v, u8x16_splat(0x20)),
        );
        let mask = u8x16_bitmask(stops);
        if mask != 0 {
            return Some(at + mask.trailing_zeros() as usize);
        }
        at += 16;
    }
    let tail = chunks.remainder();
    tail.iter()
        .position(|&c| c == b'"' || c == b'\\' || c < 0x20)
        .map(|i| at + i)
}

/// Where the first `"`, `\` or control character of `s` is: where a
/// string's plain text stops. Without SIMD, 8 bytes at a time in a `u64`
/// (as `serde_json` does): a byte equal to `"` or `\` is a zero byte of
/// the word XOR that byte, and a zero or control byte sets its high bit in
/// `word - 0x01..` (or `- 0x20..`) where it was clear in `word`. Carries only
/// go up, so the lowest set bit is the first stop.
#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
fn string_stop(s: &[u8]) -> Option<usize> {
    const ONES: u64 = u64::from_ne_bytes([1; 8]);
    const HIGH: u64 = ONES << 7;
    let below = |w: u64, n: u8| w.wrapping_sub(ONES * u64::from(n)) & !w & HIGH;
    let mut chunks = s.chunks_exact(8);
    let mut at = 0;
    for c in &mut chunks {
        let w = u64::from_le_bytes(c.try_into().expect("8 bytes"));
        let stops = below(w ^ (ONES * u64::from(b'"')), 1)
            | below(w ^ (ONES * u64::from(b'\\')), 1)
            | below(w, 0x20);
        if stops != 0 {
            return Some(at + stops.trailing_zeros() as usize / 8);
        }
        at += 8;
    }
    let tail = chunks.remainder();
    tail.iter()
        .position(|&c| c == b'"' || c == b'\\' || c < 0x20)
        .map(|i| at + i)
}

/// `bytes` are UTF-8, as `serde_json` requires of keys, decoded strings
/// and raw values.
fn utf8(bytes: &[u8]) -> Scan<()> {
    if bytes.is_ascii() || std::str::from_utf8(bytes).is_ok() {
        Ok(())
    } else {
        Err(Unsure)
    }
}

/// A cursor over the payload bytes.
struct Scanner<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Scanner<'a> {
    /// Skips JSON whitespace.
    #[inline(always)]
    fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\t' | b'\r') = self.b.get(self.i) {
            self.i += 1;
        }
    }

    /// The next byte after whitespace, not consumed.
    #[inline(always)]
    fn peek(&mut self) -> Scan<u8> {
        self.ws();
        self.b.get(self.i).copied().ok_or(Unsure)
    }

    /// Consumes `byte` after whitespace.
    #[inline(always)]
    fn eat(&mut self, byte: u8) -> Scan<()> {
        if self.peek()? != byte {
            return Err(Unsure);
        }
        self.i += 1;
        Ok(())
    }

    /// Only whitespace is left.
    fn end(&mut self) -> Scan<()> {
        self.ws();
        if self.i == self.b.len() {
            Ok(())
        } else {
            Err(Unsure)
        }
    }

    /// Skips a string at its opening quote; says whether it had escapes.
    fn string(&mut self) -> Scan<bool> {
        self.i += 1;
        let mut escaped = false;
        loop {
            let rest = &self.b[self.i..];
            let n = string_stop(rest).ok_or(Unsure)?;
            self.i += n + 1;
            match rest[n] {
                b'"' => return Ok(escaped),
                b'\\' => {}
                // Control characters must be escaped.
                _ => return Err(Unsure),
            }
            escaped = true;
            match self.b.get(self.i) {
                Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => self.i += 1,
                Some(b'u') => {
                    let hex = self.b.get(self.i + 1..self.i + 5).ok_or(Unsure)?;
                    if !hex.iter().all(u8::is_ascii_hexdigit) {
                        return Err(Unsure);
                    }
                    self.i += 5;
                }
                _ => return Err(Unsure),
            }
        }
    }

    /// Reads an object key (at its opening quote) and the colon after it.
    /// A key with escapes, or not UTF-8, is for `serde_json` to read.
    #[inline(always)]
    fn key(&mut self) -> Scan<&'a [u8]> {
        if self.peek()? != b'"' {
            return Err(Unsure);
        }
        let start = self.i + 1;
        if self.string()? {
            return Err(Unsure);
        }
        let key = &self.b[start..self.i - 1];
        utf8(key)?;
        self.eat(b':')?;
        Ok(key)
    }

    /// Skips an object key that no path looks at (escapes allowed, as
    /// `serde_json` skips it) and the colon after it.
    #[inline(always)]
    fn skip_key(&mut self) -> Scan<()> {
        if self.peek()? != b'"' {
            return Err(Unsure);
        }
        self.string()?;
        self.eat(b':')
    }

    /// After a member or element: `true` on a comma (more follow), `false`
    /// on the closing `close`.
    #[inline(always)]
    fn more(&mut self, close: u8) -> Scan<bool> {
        let c = self.peek()?;
        self.i += 1;
        match c {
            b',' => Ok(true),
            _ if c == close => Ok(false),
            _ => Err(Unsure),
        }
    }

    /// Consumes `[` or `{` and says whether the container is empty (its
    /// closing bracket consumed too).
    #[inline(always)]
    fn open(&mut self, close: u8) -> Scan<bool> {
        self.i += 1;
        if self.peek()? == close {
            self.i += 1;
            return Ok(true);
        }
        Ok(false)
    }

    /// Skips the literal (`true`, `false`, `null`) that starts with `first`.
    #[inline(always)]
    fn literal(&mut self, first: u8) -> Scan<()> {
        let text: &[u8] = match first {
            b't' => b"true",
            b'f' => b"false",
            b'n' => b"null",
            _ => return Err(Unsure),
        };
        if !self.b[self.i..].starts_with(text) {
            return Err(Unsure);
        }
        self.i += text.len();
        Ok(())
    }

    /// Skips the digits at the cursor; says whether there was one.
    #[inline(always)]
    fn digits(&mut self) -> bool {
        let start = self.i;
        while self.b.get(self.i).is_some_and(u8::is_ascii_digit) {
            self.i += 1;
        }
        self.i > start
    }

    /// Skips a number, with JSON's grammar.
    fn number(&mut self) -> Scan<()> {
        if self.b.get(self.i) == Some(&b'-') {
            self.i += 1;
        }
        match self.b.get(self.i) {
            Some(b'0') => {
                self.i += 1;
                if self.b.get(self.i).is_some_and(u8::is_ascii_digit) {
                    return Err(Unsure);
                }
            }
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return Err(Unsure),
        }
        if self.b.get(self.i) == Some(&b'.') {
            self.i += 1;
            if !self.digits() {
                return Err(Unsure);
            }
        }
        if let Some(b'e' | b'E') = self.b.get(self.i) {
            self.i += 1;
            if let Some(b'+' | b'-') = self.b.get(self.i) {
                self.i += 1;
            }
            if !self.digits() {
                return Err(Unsure);
            }
        }
        Ok(())
    }

    /// Skips one value (whitespace first), without recursion: the open
    /// containers are bits of `objects` (1: object, 0: array).
    fn skip(&mut self) -> Scan<()> {
        let mut objects: u128 = 0;
        let mut depth = 0u32;
        loop {
            // A value starts here.
            match self.peek()? {
                open @ (b'{' | b'[') => {
                    let close = open + 2; // `}` and `]`
                    if !self.open(close)? {
                        if depth == MAX_DEPTH {
                            return Err(Unsure);
                        }
                        objects = objects << 1 | u128::from(open == b'{');
                        depth += 1;
                        if open == b'{' {
                            self.skip_key()?;
                        }
                        continue;
                    }
                }
                b'"' => {
                    self.string()?;
                }
                b'-' | b'0'..=b'9' => self.number()?,
                first => self.literal(first)?,
            }
            // After a value: close what ends here, up to the next value.
            loop {
                if depth == 0 {
                    return Ok(());
                }
                let object = objects & 1 == 1;
                if self.more(if object { b'}' } else { b']' })? {
                    if object {
                        self.skip_key()?;
                    }
                    break;
                }
                objects >>= 1;
                depth -= 1;
            }
        }
    }

    /// Skips one value and returns where it lies, checked to be UTF-8 (as
    /// `serde_json` checks a raw value).
    fn raw(&mut self) -> Scan<Range<usize>> {
        self.ws();
        let start = self.i;
        self.skip()?;
        utf8(&self.b[start..self.i])?;
        Ok(start..self.i)
    }

    /// A scalar where a path wanted an object or array: `serde_json` reads
    /// it whole (a number is parsed, a string decoded and checked), so only
    /// a literal or a plain UTF-8 string is skipped here.
    fn scalar(&mut self, first: u8) -> Scan<()> {
        if first != b'"' {
            return self.literal(first);
        }
        let start = self.i;
        if self.string()? {
            return Err(Unsure);
        }
        utf8(&self.b[start..self.i])
    }

    /// [`find`] below the cursor.
    fn walk(&mut self, segments: &[String]) -> Scan<Option<Range<usize>>> {
        let Some((want, rest)) = segments.split_first() else {
            return self.raw().map(Some);
        };
        match self.peek()? {
            b'{' => {
                let mut found = None;
                if self.open(b'}')? {
                    return Ok(None);
                }
                loop {
                    if self.key()? == want.as_bytes() {
                        // The last of repeated keys wins.
                        found = self.walk(rest)?;
                    } else {
                        self.skip()?;
                    }
                    if !self.more(b'}')? {
                        return Ok(found);
                    }
                }
            }
            b'[' => {
                let index = want.parse::<usize>().ok();
                let mut found = None;
                if self.open(b']')? {
                    return Ok(None);
                }
                for i in 0.. {
                    if Some(i) == index {
                        found = self.walk(rest)?;
                    } else {
                        self.skip()?;
                    }
                    if !self.more(b']')? {
                        break;
                    }
                }
                Ok(found)
            }
            first => self.scalar(first).map(|()| None),
        }
    }

    /// [`spans`] below the cursor, for the paths of `active` whose first
    /// `depth` segments led here.
    fn walks(&mut self, paths: &[Path], active: u64, depth: usize, found: &mut Found) -> Scan<()> {
        let ends = ending(paths, active, depth);
        if ends != 0 {
            // Paths that go on below one that ends here are unsure.
            found.unsure |= active & !ends;
            let at = self.raw()?;
            for i in bits(ends) {
                found.at[i] = Some(at.clone());
            }
            return Ok(());
        }
        match self.peek()? {
            b'{' => {
                if self.open(b'}')? {
                    return Ok(());
                }
                // Paths met on a key of this object: a repeat is unsure.
                let mut met = 0u64;
                loop {
                    let key = self.key()?;
                    let hits = bits(active)
                        .filter(|&i| paths[i].segments()[depth].as_bytes() == key)
                        .fold(0, |m, i| m | (1u64 << i));
                    if hits == 0 {
                        self.skip()?;
                    } else {
                        found.unsure |= hits & met;
                        met |= hits;
                        self.walks(paths, hits, depth + 1, found)?;
                    }
                    if !self.more(b'}')? {
                        return Ok(());
                    }
                }
            }
            b'[' => {
                found.unsure |= active;
                self.skip()
            }
            first => self.scalar(first),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segs(path: &str) -> Vec<String> {
        Path::parse(path).segments().to_vec()
    }

    #[test]
    fn skips_what_json_allows() {
        for doc in [
            r#"{"a":[1,-0.5e+7,true,false,null,"x\u00e9\n"],"b":{},"c":[],"d":{"e":[[{}]]}}"#,
            " \t\r\n{ \"a\" : 1 , \"b\" : [ 1 , 2 ] } \n",
            "[]",
            "0",
            r#""""#,
        ] {
            let mut s = Scanner {
                b: doc.as_bytes(),
                i: 0,
            };
            assert_eq!(s.skip().and_then(|()| s.end()), Ok(()), "{doc}");
        }
    }

    #[test]
    fn gives_up_on_what_json_does_not_allow() {
        for doc in [
            "",
            "{",
            "}",
            "[1,]",
            "{\"a\":}",
            "{\"a\" 1}",
            "01",
            "1.",
            "1e",
            "-",
            "+1",
            ".5",
            "tru",
            "nul",
            "\"a",
            "\"\\x\"",
            "\"\\u12g4\"",
            "\"a\tb\"",
            "[1 2]",
            "{\"a\":1,}",
            "{1:2}",
            "1 2",
        ] {
            let mut s = Scanner {
                b: doc.as_bytes(),
                i: 0,
            };
            assert_eq!(s.skip().and_then(|()| s.end()), Err(Unsure), "{doc:?}");
        }
        let deep = "[".repeat(200) + &"]".repeat(200);
        assert_eq!(find(&segs("a"), deep.as_bytes()), Err(Unsure));
    }

    #[test]
    fn string_stop_is_the_first_quote_backslash_or_control() {
        let naive = |s: &[u8]| s.iter().position(|&c| c == b'"' || c == b'\\' || c < 0x20);
        for len in 0..40 {
            for at in 0..=len {
                for stop in (0..=255u8)
                    .step_by(3)
                    .chain([b'"', b'\\', 0x1f, 0x20, 0x80])
                {
                    for fill in [b'a', 0x7f, 0xa0, 0xff, 0x21] {
                        let mut s = vec![fill; len];
                        if at < len {
                            s[at] = stop;
                        }
                        if at + 1 < len {
                            s[at + 1] = b'"';
                        }
                        assert_eq!(string_stop(&s), naive(&s), "{s:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn finds_and_spans() {
        let doc = br#"{"a":{"b":"x","c":[1,{"d":2}]},"k":1,"k":{"z":0}}"#;
        let text = |at: Range<usize>| std::str::from_utf8(&doc[at]).unwrap();
        let found = |path: &str| find(&segs(path), doc).map(|at| at.map(text));
        assert_eq!(found("a.b"), Ok(Some(r#""x""#)));
        assert_eq!(found("a.c.1.d"), Ok(Some("2")));
        assert_eq!(found("k"), Ok(Some(r#"{"z":0}"#)));
        assert_eq!(found("a.x"), Ok(None));
        let paths = ["a.b", "k", "a.c.0", "q"].map(Path::parse);
        let spans = spans(&paths, doc).unwrap();
        assert!(matches!(&spans[0], Span::At(at) if text(at.clone()) == r#""x""#));
        assert_eq!(spans[1..], [Span::Unsure, Span::Unsure, Span::Absent]);
    }
}
