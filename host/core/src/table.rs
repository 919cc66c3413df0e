//! Lookup tables (`[tables.NAME]`): a file of rows read once, looked up by
//! key by plugins through the host.
//!
//! A table is JSON Lines (each line an object; the key is one of its
//! top-level fields, a string or a number) or CSV (a header row; the key is
//! one of its columns; each row becomes a JSON object of its columns, all
//! strings). Every row is kept as JSON text in one buffer, and an index of
//! offsets finds a key's row: about 20 bytes per row on top of the rows'
//! text, one allocation for all of them, nothing copied per lookup.
//!
//! Bad input fails the whole table, naming the file, line and column: a
//! line that is not a JSON object, a row without its key (or a key that is
//! not a string or a number), a CSV row with the wrong number of fields, a
//! duplicate key (unless the last one is to win), and a table bigger than
//! its memory cap (with both numbers).

use std::hash::BuildHasher as _;

use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;

/// How a table's file is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum TableFormat {
    /// One JSON object per line.
    Jsonl,
    /// A header row, then one row per line (RFC 4180 quoting).
    Csv,
}

/// What a key met twice means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Duplicates {
    /// The table does not load (the default).
    Error,
    /// The row further down the file wins.
    Last,
}

/// How to read one table.
#[derive(Debug, Clone)]
pub struct Spec<'a> {
    /// The table's name.
    pub name: &'a str,
    /// Its file, as errors name it.
    pub source: &'a str,
    /// How the file is written.
    pub format: TableFormat,
    /// The key field (JSON Lines) or column (CSV).
    pub key: &'a str,
    /// What a duplicate key means.
    pub duplicates: Duplicates,
    /// The most bytes the loaded table may take (rows and index).
    pub max_bytes: usize,
}

/// Why a table did not load.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TableError {
    /// A line that could not be read.
    #[error("table `{table}`: `{source_name}` line {line}, column {column}: {message}")]
    Parse {
        /// The table.
        table: String,
        /// Its file.
        source_name: String,
        /// The line, from 1.
        line: usize,
        /// The column (a character, or a CSV field), from 1.
        column: usize,
        /// What is wrong.
        message: String,
    },
    /// A key met twice.
    #[error(
        "table `{table}`: `{source_name}` line {line}: key `{key}` is already the key of line \
         {first}; set `duplicates = \"last\"` to let the last row win"
    )]
    Duplicate {
        /// The table.
        table: String,
        /// Its file.
        source_name: String,
        /// The key.
        key: String,
        /// The line of its first row.
        first: usize,
        /// The line of this row.
        line: usize,
    },
    /// More than the table's memory cap.
    #[error(
        "table `{table}`: `{source_name}` takes more than its max_bytes of {max} bytes \
         ({bytes} bytes by line {line}); raise `max_bytes` (and the function's memory) or trim the file"
    )]
    TooBig {
        /// The table.
        table: String,
        /// Its file.
        source_name: String,
        /// Bytes used when it went over.
        bytes: usize,
        /// The cap.
        max: usize,
        /// The line it went over at.
        line: usize,
    },
}

/// One row's place in the buffer: its key and its JSON text.
#[derive(Debug, Clone, Copy)]
struct Entry {
    key: (u32, u32),
    row: (u32, u32),
    line: u32,
}

/// A loaded table.
pub struct Table {
    name: String,
    text: Vec<u8>,
    entries: Vec<Entry>,
    index: hashbrown::HashTable<u32>,
    hasher: std::hash::RandomState,
}

impl std::fmt::Debug for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Table")
            .field("name", &self.name)
            .field("rows", &self.len())
            .field("bytes", &self.bytes())
            .finish_non_exhaustive()
    }
}

/// Index bytes per row: an entry and its slot in the hash table.
const INDEX_BYTES_PER_ROW: usize = std::mem::size_of::<Entry>() + 5;

impl Table {
    /// The row of `key` as JSON text, if any.
    pub fn get(&self, key: &str) -> Option<&str> {
        let hash = self.hasher.hash_one(key.as_bytes());
        let &i = self.index.find(hash, |&i| {
            self.slice(self.entries[i as usize].key) == key.as_bytes()
        })?;
        // Rows are JSON text, checked when read.
        std::str::from_utf8(self.slice(self.entries[i as usize].row)).ok()
    }

    /// The number of rows.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Whether it has no rows.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The bytes it holds: the rows' text and keys, and the index.
    pub fn bytes(&self) -> usize {
        self.text.capacity()
            + self.entries.capacity() * std::mem::size_of::<Entry>()
            + self.index.capacity() * 5
    }

    fn slice(&self, (at, len): (u32, u32)) -> &[u8] {
        &self.text[at as usize..at as usize + len as usize]
    }
}

/// Reads a table from its file's bytes.
pub fn parse(spec: &Spec<'_>, bytes: &[u8]) -> Result<Table, TableError> {
    let mut builder = Builder {
        spec,
        table: Table {
            name: spec.name.to_owned(),
            // The rows, plus a copy of each key: about an eighth more.
            text: Vec::with_capacity((bytes.len() + bytes.len() / 8).min(spec.max_bytes)),
            entries: Vec::new(),
            index: hashbrown::HashTable::new(),
            hasher: std::hash::RandomState::new(),
        },
    };
    match spec.format {
        TableFormat::Jsonl => builder.jsonl(bytes)?,
        TableFormat::Csv => builder.csv(bytes)?,
    }
    let mut table = builder.table;
    table.text.shrink_to_fit();
    table.entries.shrink_to_fit();
    Ok(table)
}

struct Builder<'s, 'a> {
    spec: &'s Spec<'a>,
    table: Table,
}

impl Builder<'_, '_> {
    fn parse_error(&self, line: usize, column: usize, message: String) -> TableError {
        TableError::Parse {
            table: self.spec.name.to_owned(),
            source_name: self.spec.source.to_owned(),
            line,
            column,
            message,
        }
    }

    fn jsonl(&mut self, bytes: &[u8]) -> Result<(), TableError> {
        for (i, line) in bytes.split(|&b| b == b'\n').enumerate() {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let n = i + 1;
            let mut de = serde_json::Deserializer::from_slice(line);
            let key = KeyOf(self.spec.key)
                .deserialize(&mut de)
                .and_then(|k| de.end().map(|()| k))
                .map_err(|e| {
                    // The position is the table's, not the line's own.
                    let message = e.to_string();
                    let message = message
                        .rsplit_once(" at line ")
                        .map_or(message.as_str(), |(m, _)| m);
                    self.parse_error(n, e.column(), message.to_owned())
                })?;
            let Some(key) = key else {
                return Err(self.parse_error(
                    n,
                    1,
                    format!("the row has no key field `{}`", self.spec.key),
                ));
            };
            let key = key_text(key).map_err(|m| self.parse_error(n, 1, m))?;
            let row = std::str::from_utf8(line)
                .map_err(|e| self.parse_error(n, e.valid_up_to() + 1, "not UTF-8".into()))?;
            self.insert(n, &key, row.trim())?;
        }
        Ok(())
    }

    fn csv(&mut self, bytes: &[u8]) -> Result<(), TableError> {
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            .from_reader(bytes);
        let headers = reader.headers().map_err(|e| self.csv_error(&e))?.clone();
        let Some(key_at) = headers.iter().position(|h| h == self.spec.key) else {
            return Err(self.parse_error(
                1,
                1,
                format!(
                    "the header has no key column `{}` (columns: {})",
                    self.spec.key,
                    headers.iter().collect::<Vec<_>>().join(", ")
                ),
            ));
        };
        let mut record = csv::StringRecord::new();
        let mut row = String::new();
        loop {
            match reader.read_record(&mut record) {
                Ok(false) => return Ok(()),
                Ok(true) => {}
                Err(e) => return Err(self.csv_error(&e)),
            }
            let line = record.position().map_or(0, |p| p.line() as usize);
            row.clear();
            row.push('{');
            for (k, (h, v)) in headers.iter().zip(record.iter()).enumerate() {
                if k > 0 {
                    row.push(',');
                }
                // Writing JSON strings into a String cannot fail.
                row.push_str(&serde_json::to_string(h).unwrap_or_default());
                row.push(':');
                row.push_str(&serde_json::to_string(v).unwrap_or_default());
            }
            row.push('}');
            let key = record.get(key_at).unwrap_or_default().to_owned();
            self.insert(line, &key, &row)?;
        }
    }

    fn csv_error(&self, e: &csv::Error) -> TableError {
        match e.kind() {
            csv::ErrorKind::UnequalLengths {
                pos,
                expected_len,
                len,
            } => self.parse_error(
                pos.as_ref().map_or(0, |p| p.line() as usize),
                (*len).min(*expected_len) as usize + 1,
                format!("the row has {len} fields; the header has {expected_len}"),
            ),
            csv::ErrorKind::Utf8 { pos, err } => self.parse_error(
                pos.as_ref().map_or(0, |p| p.line() as usize),
                err.field() + 1,
                "not UTF-8".into(),
            ),
            _ => self.parse_error(
                e.position().map_or(0, |p| p.line() as usize),
                1,
                e.to_string(),
            ),
        }
    }

    /// Adds a row (or replaces the row of its key, for `duplicates = "last"`).
    fn insert(&mut self, line: usize, key: &str, row: &str) -> Result<(), TableError> {
        let t = &mut self.table;
        let needed =
            t.text.len() + key.len() + row.len() + (t.entries.len() + 1) * INDEX_BYTES_PER_ROW;
        if needed > self.spec.max_bytes {
            return Err(TableError::TooBig {
                table: self.spec.name.to_owned(),
                source_name: self.spec.source.to_owned(),
                bytes: needed,
                max: self.spec.max_bytes,
                line,
            });
        }
        let key_at = (t.text.len() as u32, key.len() as u32);
        t.text.extend_from_slice(key.as_bytes());
        let row_at = (t.text.len() as u32, row.len() as u32);
        t.text.extend_from_slice(row.as_bytes());
        let entry = Entry {
            key: key_at,
            row: row_at,
            line: line as u32,
        };
        let hash = t.hasher.hash_one(key.as_bytes());
        let (text, entries, hasher) = (&t.text, &t.entries, &t.hasher);
        let key_of = |i: u32| {
            let (at, len) = entries[i as usize].key;
            &text[at as usize..(at + len) as usize]
        };
        let found = t
            .index
            .find(hash, |&i| key_of(i) == key.as_bytes())
            .copied();
        match (found, self.spec.duplicates) {
            (None, _) => {
                let i = entries.len() as u32;
                t.index.insert_unique(hash, i, |&j| {
                    let (at, len) = entries[j as usize].key;
                    hasher.hash_one(&text[at as usize..(at + len) as usize])
                });
                t.entries.push(entry);
            }
            (Some(i), Duplicates::Last) => t.entries[i as usize] = entry,
            (Some(i), Duplicates::Error) => {
                return Err(TableError::Duplicate {
                    table: self.spec.name.to_owned(),
                    source_name: self.spec.source.to_owned(),
                    key: key.to_owned(),
                    first: t.entries[i as usize].line as usize,
                    line,
                });
            }
        }
        Ok(())
    }
}

/// A key's text: a string as it is, a number as written.
fn key_text(raw: &RawValue) -> Result<String, String> {
    let text = raw.get();
    match text.as_bytes().first() {
        Some(b'"') => serde_json::from_str::<String>(text).map_err(|e| e.to_string()),
        Some(b'-' | b'0'..=b'9') => Ok(text.to_owned()),
        _ => Err(format!(
            "the key is `{text}`: expected a string or a number"
        )),
    }
}

/// Reads one JSON object and hands back its field `.0`, unparsed.
struct KeyOf<'k>(&'k str);

impl<'de> DeserializeSeed<'de> for KeyOf<'_> {
    type Value = Option<&'de RawValue>;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for KeyOf<'_> {
    type Value = Option<&'de RawValue>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found = None;
        while let Some(FieldName(field)) = map.next_key::<FieldName<'de>>()? {
            if field == self.0 {
                found = Some(map.next_value::<&'de RawValue>()?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(found)
    }
}

/// A field name, borrowed from the line unless it has escapes.
struct FieldName<'de>(std::borrow::Cow<'de, str>);

impl<'de> serde::Deserialize<'de> for FieldName<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Name;
        impl<'de> Visitor<'de> for Name {
            type Value = FieldName<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a field name")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(FieldName(std::borrow::Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(FieldName(std::borrow::Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(Name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(format: TableFormat) -> Spec<'static> {
        Spec {
            name: "customers",
            source: "customers.data",
            format,
            key: "id",
            duplicates: Duplicates::Error,
            max_bytes: 1 << 20,
        }
    }

    #[test]
    fn json_lines_by_a_string_or_number_key() {
        let t = parse(
            &spec(TableFormat::Jsonl),
            b"{\"id\": \"u-1\", \"tier\": \"gold\"}\n\n{\"tier\": \"silver\", \"id\": 42}\r\n",
        )
        .unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t.get("u-1"), Some(r#"{"id": "u-1", "tier": "gold"}"#));
        assert_eq!(t.get("42"), Some(r#"{"tier": "silver", "id": 42}"#));
        assert_eq!(t.get("u-2"), None);
    }

    #[test]
    fn csv_rows_become_objects_of_their_columns() {
        let t = parse(
            &spec(TableFormat::Csv),
            b"id,tier,name\nu-1,gold,\"Ada, Countess\"\nu-2,silver,Bo\n",
        )
        .unwrap();
        assert_eq!(
            t.get("u-1"),
            Some(r#"{"id":"u-1","tier":"gold","name":"Ada, Countess"}"#)
        );
        assert_eq!(t.get("u-2").map(|r| r.contains("silver")), Some(true));
    }

    #[test]
    fn bad_input_names_file_line_and_column() {
        let e = |format, text: &str| {
            parse(&spec(format), text.as_bytes())
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            e(TableFormat::Jsonl, "{\"id\": 1}\n{\"id\": 2,, }\n"),
            "table `customers`: `customers.data` line 2, column 10: key must be a string"
        );
        let array = e(TableFormat::Jsonl, "[1, 2]\n");
        assert!(
            array.contains("line 1, column ") && array.contains("expected a JSON object"),
            "{array}"
        );
        assert!(
            e(TableFormat::Jsonl, "{\"name\": 1}\n")
                .contains("line 1, column 1: the row has no key field `id`")
        );
        assert!(
            e(TableFormat::Jsonl, "{\"id\": null}\n")
                .contains("the key is `null`: expected a string or a number")
        );
        assert_eq!(
            e(TableFormat::Csv, "id,tier\nu-1,gold\nu-2\n"),
            "table `customers`: `customers.data` line 3, column 2: the row has 1 fields; the header has 2"
        );
        assert!(
            e(TableFormat::Csv, "name,tier\n")
                .contains("the header has no key column `id` (columns: name, tier)")
        );
        assert_eq!(
            e(
                TableFormat::Jsonl,
                "{\"id\": 1}\n{\"id\": 2}\n{\"id\": 1}\n"
            ),
            "table `customers`: `customers.data` line 3: key `1` is already the key of line 1; set `duplicates = \"last\"` to let the last row win"
        );
    }

    #[test]
    fn the_last_duplicate_wins_when_asked() {
        let mut s = spec(TableFormat::Jsonl);
        s.duplicates = Duplicates::Last;
        let t = parse(&s, b"{\"id\": 1, \"v\": 1}\n{\"id\": 1, \"v\": 2}\n").unwrap();
        assert_eq!((t.len(), t.get("1")), (1, Some(r#"{"id": 1, "v": 2}"#)));
    }

    #[test]
    fn a_table_over_its_cap_says_both_numbers() {
        let mut s = spec(TableFormat::Jsonl);
        s.max_bytes = 100;
        let text: String = (0..10)
            .map(|i| format!("{{\"id\": {i}, \"pad\": \"xxxxxxxx\"}}\n"))
            .collect();
        let e = parse(&s, text.as_bytes()).unwrap_err().to_string();
        assert!(e.contains("more than its max_bytes of 100 bytes ("), "{e}");
    }
}
