//! `COPY … FROM STDIN` data parsing (text and CSV formats).
//!
//! Data arrives in arbitrary chunks; [`CopyIn`] buffers them, cuts complete
//! records, and collects each target column's fields as text. At the end the
//! text columns are cast to the column types in one vectorized Arrow cast per
//! column, so a bad field fails the whole COPY (nothing is written) with the
//! line and column named.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayBuilder, ArrayRef, StringBuilder};
use datafusion::arrow::compute::{cast_with_options, CastOptions};
use datafusion::sql::sqlparser::ast::{CopyLegacyCsvOption, CopyLegacyOption, CopyOption};

use crate::catalog::TableDef;
use crate::{PlannerError, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyFormat {
    Text,
    Csv,
}

#[derive(Debug, Clone)]
pub struct CopyOptions {
    pub format: CopyFormat,
    pub delimiter: char,
    pub null: String,
    pub header: bool,
    pub quote: char,
    pub escape: char,
}

impl CopyOptions {
    pub fn from_ast(options: &[CopyOption], legacy: &[CopyLegacyOption]) -> Result<Self> {
        let mut format = CopyFormat::Text;
        let (mut delimiter, mut null, mut header, mut quote, mut escape) =
            (None, None, false, '"', None);
        for o in options {
            match o {
                CopyOption::Format(f) => {
                    format = match f.value.to_ascii_lowercase().as_str() {
                        "text" => CopyFormat::Text,
                        "csv" => CopyFormat::Csv,
                        "binary" => return Err(PlannerError::not_supported("COPY binary format")),
                        other => {
                            return Err(PlannerError::InvalidParameterValue(format!(
                                "COPY format \"{other}\" not recognized"
                            )))
                        }
                    }
                }
                CopyOption::Delimiter(c) => delimiter = Some(*c),
                CopyOption::Null(s) => null = Some(s.clone()),
                CopyOption::Header(h) => header = *h,
                CopyOption::Quote(c) => quote = *c,
                CopyOption::Escape(c) => escape = Some(*c),
                CopyOption::Encoding(e)
                    if e.eq_ignore_ascii_case("utf8") || e.eq_ignore_ascii_case("utf-8") => {}
                other => return Err(PlannerError::not_supported(format!("COPY option {other}"))),
            }
        }
        for o in legacy {
            match o {
                CopyLegacyOption::Binary => {
                    return Err(PlannerError::not_supported("COPY binary format"))
                }
                CopyLegacyOption::Delimiter(c) => delimiter = Some(*c),
                CopyLegacyOption::Null(s) => null = Some(s.clone()),
                CopyLegacyOption::Header => header = true,
                CopyLegacyOption::Csv(csv) => {
                    format = CopyFormat::Csv;
                    for c in csv {
                        match c {
                            CopyLegacyCsvOption::Header => header = true,
                            CopyLegacyCsvOption::Quote(q) => quote = *q,
                            CopyLegacyCsvOption::Escape(e) => escape = Some(*e),
                            other => {
                                return Err(PlannerError::not_supported(format!(
                                    "COPY option {other}"
                                )))
                            }
                        }
                    }
                }
                other => return Err(PlannerError::not_supported(format!("COPY option {other}"))),
            }
        }
        if header && format == CopyFormat::Text {
            return Err(PlannerError::not_supported(
                "COPY HEADER in text format (use FORMAT csv)",
            ));
        }
        Ok(CopyOptions {
            format,
            delimiter: delimiter.unwrap_or(if format == CopyFormat::Csv { ',' } else { '\t' }),
            null: null.unwrap_or_else(|| {
                if format == CopyFormat::Csv {
                    String::new()
                } else {
                    "\\N".into()
                }
            }),
            header,
            quote,
            escape: escape.unwrap_or(quote),
        })
    }
}

/// An in-progress `COPY t FROM STDIN`.
pub struct CopyIn {
    pub table: Arc<TableDef>,
    /// Indexes into the table's columns, in the order fields arrive.
    pub columns: Vec<usize>,
    options: CopyOptions,
    buf: Vec<u8>,
    fields: Vec<StringBuilder>,
    line: usize,
    header_pending: bool,
    ended: bool,
}

impl CopyIn {
    pub fn new(table: Arc<TableDef>, columns: Vec<usize>, options: CopyOptions) -> Self {
        let fields = columns.iter().map(|_| StringBuilder::new()).collect();
        let header_pending = options.header;
        CopyIn {
            table,
            columns,
            options,
            buf: Vec::new(),
            fields,
            line: 0,
            header_pending,
            ended: false,
        }
    }

    pub fn rows(&self) -> usize {
        self.fields.first().map(|f| f.len()).unwrap_or(0)
    }

    /// Consumes a chunk of COPY data, parsing every complete record in it.
    pub fn feed(&mut self, data: &[u8]) -> Result<()> {
        self.buf.extend_from_slice(data);
        let mut start = 0;
        while let Some(end) = self.record_end(start) {
            let record = self.buf[start..end].to_vec();
            start = end + 1;
            self.record(&record)?;
        }
        self.buf.drain(..start);
        Ok(())
    }

    /// The index of the newline ending the record that starts at `start`.
    fn record_end(&self, start: usize) -> Option<usize> {
        let rest = &self.buf[start..];
        match self.options.format {
            CopyFormat::Text => rest.iter().position(|&b| b == b'\n').map(|i| start + i),
            CopyFormat::Csv => {
                // A newline inside quotes belongs to the field.
                let (quote, escape) = (self.options.quote as u8, self.options.escape as u8);
                let mut in_quotes = false;
                let mut i = 0;
                while i < rest.len() {
                    let b = rest[i];
                    if in_quotes {
                        if b == escape
                            && escape != quote
                            && i + 1 < rest.len()
                            && rest[i + 1] == quote
                        {
                            i += 2;
                            continue;
                        }
                        if b == quote {
                            in_quotes = false;
                        }
                    } else if b == quote {
                        in_quotes = true;
                    } else if b == b'\n' {
                        return Some(start + i);
                    }
                    i += 1;
                }
                None
            }
        }
    }

    fn record(&mut self, raw: &[u8]) -> Result<()> {
        self.line += 1;
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        if self.ended {
            return Ok(());
        }
        if raw == b"\\." {
            self.ended = true;
            return Ok(());
        }
        let text = std::str::from_utf8(raw).map_err(|_| {
            PlannerError::DataException(format!(
                "invalid byte sequence for encoding \"UTF8\" (COPY line {})",
                self.line
            ))
        })?;
        if self.header_pending {
            self.header_pending = false;
            return Ok(());
        }
        let fields = match self.options.format {
            CopyFormat::Text => {
                split_text(text, self.options.delimiter, &self.options.null, self.line)?
            }
            CopyFormat::Csv => split_csv(text, &self.options, self.line)?,
        };
        if fields.len() < self.columns.len() {
            let col = &self.table.columns[self.columns[fields.len()]].name;
            return Err(PlannerError::BadCopyFile(format!(
                "missing data for column \"{col}\" (COPY {}, line {})",
                self.table.name, self.line
            )));
        }
        if fields.len() > self.columns.len() {
            return Err(PlannerError::BadCopyFile(format!(
                "extra data after last expected column (COPY {}, line {})",
                self.table.name, self.line
            )));
        }
        for (b, f) in self.fields.iter_mut().zip(fields) {
            b.append_option(f);
        }
        Ok(())
    }

    /// Parses what is left and returns one column per target column, cast to
    /// its type.
    pub fn finish(mut self) -> Result<Vec<ArrayRef>> {
        if !self.buf.is_empty() {
            let rest = std::mem::take(&mut self.buf);
            self.record(&rest)?;
        }
        let opts = CastOptions {
            safe: false,
            ..Default::default()
        };
        let mut out: Vec<ArrayRef> = Vec::with_capacity(self.columns.len());
        for (b, &c) in self.fields.iter_mut().zip(&self.columns) {
            let col = &self.table.columns[c];
            let text: ArrayRef = Arc::new(b.finish());
            if col.sql_type == crate::types::SqlType::Bytea {
                let strings = text
                    .as_any()
                    .downcast_ref::<datafusion::arrow::array::StringArray>()
                    .expect("text");
                let bytes: Vec<Option<Vec<u8>>> = strings
                    .iter()
                    .map(|v| v.map(crate::rewrite::bytea_input).transpose())
                    .collect::<Result<_>>()?;
                out.push(Arc::new(datafusion::arrow::array::BinaryArray::from_iter(
                    bytes,
                )));
                continue;
            }
            let target = col.sql_type.arrow();
            if let Some(kind) = crate::datetime_in::Kind::of(&target) {
                let strings = text
                    .as_any()
                    .downcast_ref::<datafusion::arrow::array::StringArray>()
                    .expect("text");
                let read = crate::datetime_in::parse_array(strings, kind).map_err(|e| {
                    let e = PlannerError::from(e);
                    let at = format!(" (COPY {}, column {})", self.table.name, col.name);
                    match e {
                        PlannerError::InvalidDatetime(m) => PlannerError::InvalidDatetime(m + &at),
                        PlannerError::DatetimeOutOfRange(m) => {
                            PlannerError::DatetimeOutOfRange(m + &at)
                        }
                        other => other,
                    }
                })?;
                out.push(cast_with_options(&read, &target, &opts)?);
                continue;
            }
            let typed = cast_with_options(&text, &target, &opts).map_err(|e| {
                let m = e.to_string();
                if let Some(what) = m
                    .find("Cannot cast string '")
                    .and_then(|i| crate::error::numeric_special(&m[i..]))
                {
                    return PlannerError::NotSupported(what);
                }
                PlannerError::InvalidText(format!(
                    "invalid input syntax for type {}: {} (COPY {}, column {})",
                    col.sql_type.pg_name(),
                    e,
                    self.table.name,
                    col.name
                ))
            })?;
            out.push(typed);
        }
        Ok(out)
    }
}

fn split_text(line: &str, delim: char, null: &str, line_no: usize) -> Result<Vec<Option<String>>> {
    let mut out = Vec::new();
    for raw in line.split(delim) {
        if raw == null {
            out.push(None);
            continue;
        }
        if !raw.contains('\\') {
            out.push(Some(raw.to_string()));
            continue;
        }
        let mut s = String::with_capacity(raw.len());
        let mut chars = raw.chars().peekable();
        while let Some(c) = chars.next() {
            if c != '\\' {
                s.push(c);
                continue;
            }
            match chars.next() {
                Some('n') => s.push('\n'),
                Some('t') => s.push('\t'),
                Some('r') => s.push('\r'),
                Some('b') => s.push('\u{8}'),
                Some('f') => s.push('\u{c}'),
                Some('v') => s.push('\u{b}'),
                Some(d @ '0'..='7') => {
                    let mut v = d.to_digit(8).unwrap_or(0);
                    for _ in 0..2 {
                        match chars.peek().and_then(|c| c.to_digit(8)) {
                            Some(n) => {
                                v = v * 8 + n;
                                chars.next();
                            }
                            None => break,
                        }
                    }
                    s.push(char::from_u32(v).unwrap_or('\u{fffd}'));
                }
                Some('x') => {
                    let mut v = 0;
                    let mut n = 0;
                    while n < 2 {
                        match chars.peek().and_then(|c| c.to_digit(16)) {
                            Some(d) => {
                                v = v * 16 + d;
                                chars.next();
                                n += 1;
                            }
                            None => break,
                        }
                    }
                    if n == 0 {
                        s.push('x');
                    } else {
                        s.push(char::from_u32(v).unwrap_or('\u{fffd}'));
                    }
                }
                Some(other) => s.push(other),
                None => {
                    return Err(PlannerError::BadCopyFile(format!(
                        "end-of-copy marker corrupt (line {line_no})"
                    )))
                }
            }
        }
        out.push(Some(s));
    }
    Ok(out)
}

fn split_csv(line: &str, o: &CopyOptions, line_no: usize) -> Result<Vec<Option<String>>> {
    // As PostgreSQL reads CSV: a quote starts a quoted section anywhere in a
    // field and the next unescaped quote ends it; inside one the delimiter
    // is data, and the escape character makes a following quote — or, with
    // an ESCAPE of its own, a following escape — literal (`""` by default).
    let mut out = Vec::new();
    let mut chars = line.chars().peekable();
    let mut field = String::new();
    let (mut quoted, mut in_quotes) = (false, false);
    while let Some(c) = chars.next() {
        if in_quotes {
            if c == o.escape && chars.peek().is_some_and(|&n| n == o.quote || n == o.escape) {
                field.extend(chars.next());
            } else if c == o.quote {
                in_quotes = false;
            } else {
                field.push(c);
            }
        } else if c == o.delimiter {
            out.push(csv_value(std::mem::take(&mut field), quoted, o));
            quoted = false;
        } else if c == o.quote {
            (quoted, in_quotes) = (true, true);
        } else {
            field.push(c);
        }
    }
    if in_quotes {
        return Err(PlannerError::BadCopyFile(format!(
            "unterminated CSV quoted field (line {line_no})"
        )));
    }
    out.push(csv_value(field, quoted, o));
    Ok(out)
}

/// An unquoted field equal to the NULL string is NULL; a quoted one is not.
fn csv_value(field: String, quoted: bool, o: &CopyOptions) -> Option<String> {
    (quoted || field != o.null).then_some(field)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn csv() -> CopyOptions {
        CopyOptions {
            format: CopyFormat::Csv,
            delimiter: ',',
            null: String::new(),
            header: false,
            quote: '"',
            escape: '"',
        }
    }

    #[test]
    fn text_escapes_and_nulls() {
        let f = split_text("a\\tb\t\\N\tc\\\\d\t\\101", '\t', "\\N", 1).unwrap();
        assert_eq!(
            f,
            vec![
                Some("a\tb".into()),
                None,
                Some("c\\d".into()),
                Some("A".into())
            ]
        );
    }

    #[test]
    fn csv_escape_of_its_own() {
        let o = CopyOptions {
            escape: '\\',
            ..csv()
        };
        // \" is a quote and \\ a backslash inside quotes; elsewhere, and
        // before any other character, a backslash is itself.
        let f = split_csv(r#""a\"b","c\\d","e\f",g\h"#, &o, 1).unwrap();
        assert_eq!(
            f,
            vec![
                Some("a\"b".into()),
                Some("c\\d".into()),
                Some("e\\f".into()),
                Some("g\\h".into())
            ]
        );
    }

    #[test]
    fn csv_quotes_anywhere_in_a_field() {
        // PostgreSQL: `ab"c,d"e` is one field `abc,de`; `"x""y"` with a
        // separate ESCAPE is two quoted sections, `xy`.
        let f = split_csv(r#"ab"c,d"e,"p"q"#, &csv(), 1).unwrap();
        assert_eq!(f, vec![Some("abc,de".into()), Some("pq".into())]);
        let o = CopyOptions {
            escape: '\\',
            ..csv()
        };
        assert_eq!(
            split_csv(r#""x""y""#, &o, 1).unwrap(),
            vec![Some("xy".into())]
        );
        assert!(split_csv(r#"a,"b"#, &csv(), 7)
            .unwrap_err()
            .to_string()
            .contains("line 7"));
    }

    #[test]
    fn csv_quotes() {
        let f = split_csv(r#"1,"a,""b""",,"""#, &csv(), 1).unwrap();
        assert_eq!(
            f,
            vec![
                Some("1".into()),
                Some("a,\"b\"".into()),
                None,
                Some("".into())
            ]
        );
    }
}
