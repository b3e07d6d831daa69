//! `connector = 'datagen'`: RisingWave's load generator. Per column,
//! `fields.<col>.kind` = `sequence` (numbers from `start` to `end`, default
//! 0 and 32767) or `random` (numbers in [`min`, `max`], default 0 and
//! 32767; strings of `length` characters, default 10; timestamps up to
//! `max_past` before `basetime`, default one day before the source's
//! creation, or before the moment of generation with `max_past_mode =
//! 'relative'`; booleans), each random column from its `seed`.
//! `datagen.rows.per.second` (default 10, RisingWave's) paces the rows
//! across `datagen.split.num` splits (default 1). With a sequence column the
//! source ends when its sequence does.
//!
//! Row `g` of the source (split `g % splits`, that split's offset `g /
//! splits`) is a pure function of `g` and the options: a sequence column
//! holds `start + g`, a random one a hash of (seed, column, `g`). A split
//! reopened at an offset therefore produces exactly the rows it would have
//! produced next, whatever happened before — which is what makes a
//! generator's offset as good as Kafka's.

use std::sync::Arc;

use chrono::DateTime;
use datafusion::arrow::array::{
    ArrayRef, BooleanArray, Date32Array, Decimal128Array, Float32Array, Float64Array, Int16Array,
    Int32Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::{DataType, SchemaRef, TimeUnit};

use crate::error::{invalid, ConnectorError};
use crate::options::parse_value;
use crate::registry::SourceContext;
use crate::source::{Chunk, GeneratorPosition, Pace};
use crate::{Options, Result, Source, SplitReader};

/// RisingWave's default `datagen.rows.per.second`.
const DEFAULT_RATE: f64 = 10.0;
/// Rows per chunk at most.
const MAX_CHUNK: usize = 1024;

#[derive(Debug, Clone)]
enum Gen {
    /// `start + g` (in the column's unit: an integer, a float, or a
    /// decimal's scaled integer).
    SeqInt(i128),
    SeqFloat(f64),
    RandInt {
        min: i128,
        max: i128,
        seed: u64,
    },
    RandFloat {
        min: f64,
        max: f64,
        seed: u64,
    },
    RandString {
        length: usize,
        seed: u64,
    },
    RandBool {
        seed: u64,
    },
    /// Microseconds since the epoch: `base - r * max_past`; `base` is now
    /// at generation when `None` (`max_past_mode = 'relative'`).
    RandTime {
        base: Option<i64>,
        max_past: i64,
        seed: u64,
    },
}

#[derive(Debug, Clone)]
pub struct Datagen {
    schema: SchemaRef,
    gens: Vec<Gen>,
    splits: u64,
    rate: f64,
    /// Rows in all, when a sequence column bounds the source.
    total: Option<u64>,
}

impl Datagen {
    pub fn new(options: &mut Options, ctx: &SourceContext) -> Result<Datagen> {
        let rate: f64 = options.parse("datagen.rows.per.second", DEFAULT_RATE)?;
        if rate.is_nan() || rate < 0.0 {
            return Err(invalid("datagen.rows.per.second must not be negative"));
        }
        let splits: u64 = options.parse("datagen.split.num", 1)?;
        if splits == 0 {
            return Err(invalid("datagen.split.num must be at least 1"));
        }
        let mut gens = Vec::new();
        let mut total: Option<u64> = None;
        for (i, field) in ctx.schema.fields().iter().enumerate() {
            let name = field.name();
            let mut take = |what: &str| options.take(&format!("fields.{name}.{what}"));
            let kind = take("kind").unwrap_or_else(|| "random".into());
            let key = |what: &str| format!("fields.{name}.{what}");
            let seed: u64 = match take("seed") {
                Some(v) => parse_value::<u64>(&key("seed"), &v)?,
                None => 0u64,
            }
            .wrapping_add(i as u64 * 0x9E37_79B9);
            let ty = field.data_type();
            let number = |v: &str, what: &str| -> Result<i128> { number(ty, &key(what), v) };
            let gen = match (kind.to_ascii_lowercase().as_str(), ty) {
                ("sequence", t) if is_number(t) => {
                    let start = take("start").unwrap_or_else(|| "0".into());
                    let end = take("end").unwrap_or_else(|| "32767".into());
                    let rows = if let DataType::Float32 | DataType::Float64 = t {
                        let s: f64 = parse_value(&key("start"), &start)?;
                        let e: f64 = parse_value(&key("end"), &end)?;
                        ordered(s, e, &key("start"), &key("end"))?;
                        ((e - s).floor() as u64) + 1
                    } else {
                        let s = number(&start, "start")?;
                        let e = number(&end, "end")?;
                        ordered(s, e, &key("start"), &key("end"))?;
                        (((e - s) / unit(t)) as u64) + 1
                    };
                    total = Some(total.map_or(rows, |t| t.min(rows)));
                    match t {
                        DataType::Float32 | DataType::Float64 => {
                            Gen::SeqFloat(parse_value(&key("start"), &start)?)
                        }
                        _ => Gen::SeqInt(number(&start, "start")?),
                    }
                }
                ("sequence", _) => {
                    return Err(ConnectorError::NotSupported(format!(
                        "datagen sequence of type {ty} (column \"{name}\")"
                    )))
                }
                ("random", DataType::Float32 | DataType::Float64) => {
                    let min: f64 =
                        parse_value(&key("min"), &take("min").unwrap_or_else(|| "0".into()))?;
                    let max: f64 =
                        parse_value(&key("max"), &take("max").unwrap_or_else(|| "32767".into()))?;
                    ordered(min, max, &key("min"), &key("max"))?;
                    Gen::RandFloat { min, max, seed }
                }
                ("random", t) if is_number(t) => {
                    let min = number(&take("min").unwrap_or_else(|| "0".into()), "min")?;
                    let max = number(&take("max").unwrap_or_else(|| "32767".into()), "max")?;
                    ordered(min, max, &key("min"), &key("max"))?;
                    Gen::RandInt { min, max, seed }
                }
                ("random", DataType::Utf8) if !is_jsonb(field) => Gen::RandString {
                    length: match take("length") {
                        Some(v) => parse_value(&key("length"), &v)?,
                        None => 10,
                    },
                    seed,
                },
                ("random", DataType::Boolean) => Gen::RandBool { seed },
                ("random", DataType::Timestamp(TimeUnit::Microsecond, _) | DataType::Date32) => {
                    let max_past = match take("max_past") {
                        Some(v) => duration_us(&v).ok_or_else(|| {
                            invalid(format!(
                                "invalid value \"{v}\" for option \"{}\"",
                                key("max_past")
                            ))
                        })?,
                        None => 86_400_000_000,
                    };
                    let mode = take("max_past_mode").unwrap_or_else(|| "absolute".into());
                    let base = match (take("basetime"), mode.to_ascii_lowercase().as_str()) {
                        (Some(b), _) => Some(
                            DateTime::parse_from_rfc3339(b.trim())
                                .map_err(|_| {
                                    invalid(format!(
                                        "invalid value \"{b}\" for option \"{}\"",
                                        key("basetime")
                                    ))
                                })?
                                .timestamp_micros(),
                        ),
                        (None, "absolute") => Some(ctx.created_ms * 1000),
                        (None, "relative") => None,
                        (None, other) => {
                            return Err(invalid(format!(
                            "invalid value \"{other}\" for option \"{}\" (absolute or relative)",
                            key("max_past_mode")
                        )))
                        }
                    };
                    Gen::RandTime {
                        base,
                        max_past,
                        seed,
                    }
                }
                ("random", _) => {
                    return Err(ConnectorError::NotSupported(format!(
                        "datagen column \"{name}\" of type {ty}"
                    )))
                }
                (other, _) => {
                    return Err(invalid(format!(
                        "invalid value \"{other}\" for option \"{}\" (sequence or random)",
                        key("kind")
                    )))
                }
            };
            gens.push(gen);
        }
        Ok(Datagen {
            schema: ctx.schema.clone(),
            gens,
            splits,
            rate,
            total,
        })
    }

    /// The rows numbered `rows` (global row numbers).
    fn rows(&self, rows: &[u64]) -> Result<RecordBatch> {
        let now_us = chrono::Utc::now().timestamp_micros();
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(self.gens.len());
        for (i, gen) in self.gens.iter().enumerate() {
            let field = self.schema.field(i);
            columns.push(column(gen, field.data_type(), rows, now_us)?);
        }
        Ok(RecordBatch::try_new_with_options(
            self.schema.clone(),
            columns,
            &datafusion::arrow::array::RecordBatchOptions::new().with_row_count(Some(rows.len())),
        )?)
    }

    /// Rows of split `split` in all (`None`: unbounded).
    fn split_rows(&self, split: u64) -> Option<u64> {
        self.total.map(|t| {
            if t > split {
                (t - split).div_ceil(self.splits)
            } else {
                0
            }
        })
    }
}

impl Source for Datagen {
    fn splits(&self) -> Vec<String> {
        (0..self.splits).map(|s| s.to_string()).collect()
    }

    fn reader(
        &self,
        split: usize,
        offset: Option<u64>,
        paced: bool,
    ) -> Result<Box<dyn SplitReader>> {
        let offset = offset.unwrap_or(0);
        let rate = (self.rate > 0.0).then(|| self.rate / self.splits as f64);
        Ok(Box::new(DatagenReader {
            gen: Arc::new(self.clone()),
            split: split as u64,
            pos: GeneratorPosition {
                offset,
                end: self.split_rows(split as u64),
                pace: if paced { Pace::new(rate, offset) } else { None },
            },
        }))
    }
}

struct DatagenReader {
    gen: Arc<Datagen>,
    split: u64,
    pos: GeneratorPosition,
}

impl SplitReader for DatagenReader {
    fn next(&mut self, max: usize) -> Result<Option<Chunk>> {
        let Some(n) = self.pos.due(max.min(MAX_CHUNK)) else {
            return Ok(None);
        };
        let at = self.pos.offset;
        let rows: Vec<u64> = (at..at + n as u64)
            .map(|p| self.split + p * self.gen.splits)
            .collect();
        let batch = self.gen.rows(&rows)?;
        self.pos.offset += n as u64;
        Ok(Some(Chunk::inserts(batch, self.pos.offset)))
    }

    fn offset(&self) -> u64 {
        self.pos.offset
    }

    fn high_watermark(&self) -> Option<u64> {
        self.pos.end
    }

    fn available_end(&self) -> Option<u64> {
        self.pos.available_end()
    }
}

/// `lo` (option `lo_key`) must not be above `hi` (option `hi_key`).
fn ordered<T: PartialOrd>(lo: T, hi: T, lo_key: &str, hi_key: &str) -> Result<()> {
    if hi < lo {
        return Err(invalid(format!("{hi_key} must not be below {lo_key}")));
    }
    Ok(())
}

fn is_number(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::Float32
            | DataType::Float64
            | DataType::Decimal128(_, _)
    )
}

fn is_jsonb(f: &datafusion::arrow::datatypes::Field) -> bool {
    f.metadata().values().any(|v| v == "jsonb")
}

/// One step of a sequence in the column's integer unit (a decimal's
/// scaled one).
fn unit(t: &DataType) -> i128 {
    match t {
        DataType::Decimal128(_, s) if *s > 0 => 10i128.pow(*s as u32),
        _ => 1,
    }
}

/// An option's number in the column's integer unit, checked to fit it.
fn number(t: &DataType, key: &str, v: &str) -> Result<i128> {
    let bad = || {
        invalid(format!(
            "invalid value \"{v}\" for option \"{key}\" (a number of type {t})"
        ))
    };
    let v = v.trim();
    let n: i128 = match t {
        DataType::Decimal128(_, s) => {
            let s = (*s).max(0) as usize;
            let (int, frac) = v.split_once('.').unwrap_or((v, ""));
            if frac.len() > s || !frac.chars().all(|c| c.is_ascii_digit()) {
                return Err(bad());
            }
            let negative = int.starts_with('-');
            let int: i128 = int.parse().map_err(|_| bad())?;
            let frac_v: i128 = if frac.is_empty() {
                0
            } else {
                format!("{frac:0<s$}").parse().map_err(|_| bad())?
            };
            let scaled = int.checked_mul(10i128.pow(s as u32)).ok_or_else(bad)?;
            if negative {
                scaled - frac_v
            } else {
                scaled + frac_v
            }
        }
        _ => v.parse().map_err(|_| bad())?,
    };
    let (lo, hi): (i128, i128) = match t {
        DataType::Int16 => (i16::MIN.into(), i16::MAX.into()),
        DataType::Int32 => (i32::MIN.into(), i32::MAX.into()),
        DataType::Int64 => (i64::MIN.into(), i64::MAX.into()),
        _ => (i128::MIN / 2, i128::MAX / 2),
    };
    if n < lo || n > hi {
        return Err(bad());
    }
    Ok(n)
}

/// SplitMix64's finalizer.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The random word of row `g` for `seed`.
fn random(seed: u64, g: u64) -> u64 {
    mix(mix(seed) ^ g)
}

/// A uniform float in [0, 1).
fn unit_float(r: u64) -> f64 {
    (r >> 11) as f64 / (1u64 << 53) as f64
}

fn column(gen: &Gen, ty: &DataType, rows: &[u64], now_us: i64) -> Result<ArrayRef> {
    let ints = |f: &dyn Fn(u64) -> i128| -> Vec<i128> { rows.iter().map(|g| f(*g)).collect() };
    let values: Vec<i128> = match gen {
        Gen::SeqInt(start) => {
            let step = unit(ty);
            ints(&|g| start + g as i128 * step)
        }
        Gen::RandInt { min, max, seed } => {
            let span = (max - min + 1) as u128;
            ints(&|g| min + (random(*seed, g) as u128 % span) as i128)
        }
        Gen::SeqFloat(start) => {
            let v: Vec<f64> = rows.iter().map(|g| start + *g as f64).collect();
            return Ok(floats(ty, v));
        }
        Gen::RandFloat { min, max, seed } => {
            let v: Vec<f64> = rows
                .iter()
                .map(|g| min + unit_float(random(*seed, *g)) * (max - min))
                .collect();
            return Ok(floats(ty, v));
        }
        Gen::RandString { length, seed } => {
            const ALPHABET: &[u8] =
                b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
            let v: StringArray = rows
                .iter()
                .map(|g| {
                    let mut r = random(*seed, *g);
                    let s: String = (0..*length)
                        .map(|i| {
                            if i % 8 == 0 && i > 0 {
                                r = mix(r);
                            }
                            let c = ALPHABET[(r % ALPHABET.len() as u64) as usize] as char;
                            r /= ALPHABET.len() as u64;
                            c
                        })
                        .collect();
                    Some(s)
                })
                .collect();
            return Ok(Arc::new(v));
        }
        Gen::RandBool { seed } => {
            let v: BooleanArray = rows
                .iter()
                .map(|g| Some(random(*seed, *g) & 1 == 1))
                .collect();
            return Ok(Arc::new(v));
        }
        Gen::RandTime {
            base,
            max_past,
            seed,
        } => {
            let base = base.unwrap_or(now_us);
            let us: Vec<i64> = rows
                .iter()
                .map(|g| base - (random(*seed, *g) % (*max_past as u64 + 1)) as i64)
                .collect();
            return Ok(match ty {
                DataType::Date32 => Arc::new(Date32Array::from(
                    us.iter()
                        .map(|u| u.div_euclid(86_400_000_000) as i32)
                        .collect::<Vec<_>>(),
                )),
                DataType::Timestamp(_, tz) => {
                    Arc::new(TimestampMicrosecondArray::from(us).with_timezone_opt(tz.clone()))
                }
                _ => unreachable!("checked when the source was opened"),
            });
        }
    };
    Ok(match ty {
        DataType::Int16 => Arc::new(Int16Array::from(
            values.iter().map(|v| *v as i16).collect::<Vec<_>>(),
        )),
        DataType::Int32 => Arc::new(Int32Array::from(
            values.iter().map(|v| *v as i32).collect::<Vec<_>>(),
        )),
        DataType::Int64 => Arc::new(Int64Array::from(
            values.iter().map(|v| *v as i64).collect::<Vec<_>>(),
        )),
        DataType::Decimal128(p, s) => {
            Arc::new(Decimal128Array::from(values).with_precision_and_scale(*p, *s)?)
        }
        other => {
            return Err(ConnectorError::NotSupported(format!(
                "datagen numbers of type {other}"
            )))
        }
    })
}

fn floats(ty: &DataType, v: Vec<f64>) -> ArrayRef {
    match ty {
        DataType::Float32 => Arc::new(Float32Array::from(
            v.into_iter().map(|x| x as f32).collect::<Vec<_>>(),
        )),
        _ => Arc::new(Float64Array::from(v)),
    }
}

/// `'2h 37min'`, `'1 day'`, `'10s'`, `'500ms'` as microseconds.
pub fn duration_us(text: &str) -> Option<i64> {
    let mut total: i64 = 0;
    let mut rest = text.trim();
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(rest.len());
        let n: f64 = rest[..digits].parse().ok()?;
        rest = rest[digits..].trim_start();
        let unit_end = rest
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(rest.len());
        let unit = rest[..unit_end].to_ascii_lowercase();
        rest = rest[unit_end..].trim_start();
        let us: f64 = match unit.as_str() {
            "us" | "usec" | "microsecond" | "microseconds" => 1.0,
            "ms" | "msec" | "millisecond" | "milliseconds" => 1e3,
            "s" | "sec" | "secs" | "second" | "seconds" => 1e6,
            "m" | "min" | "mins" | "minute" | "minutes" => 60e6,
            "h" | "hr" | "hrs" | "hour" | "hours" => 3600e6,
            "d" | "day" | "days" => 86_400e6,
            _ => return None,
        };
        total = total.checked_add((n * us) as i64)?;
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::{Field, Schema};
    use std::collections::BTreeMap;

    fn open(cols: Vec<Field>, opts: &[(&str, &str)]) -> Result<Datagen> {
        let mut options = Options::new(
            opts.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
        );
        let ctx = SourceContext {
            schema: Arc::new(Schema::new(cols)),
            created_ms: 1_700_000_000_000,
            format: None,
            include: Vec::new(),
            key: Vec::new(),
        };
        let d = Datagen::new(&mut options, &ctx)?;
        options.finish("datagen")?;
        Ok(d)
    }

    fn read_all(d: &Datagen, split: usize, from: u64) -> Vec<String> {
        let mut r = d.reader(split, Some(from), false).unwrap();
        let mut out = Vec::new();
        while let Some(c) = r.next(7).unwrap() {
            let s = datafusion::arrow::util::pretty::pretty_format_batches(&[c.rows])
                .unwrap()
                .to_string();
            out.extend(
                s.lines()
                    .skip(3)
                    .filter(|l| !l.starts_with('+'))
                    .map(String::from),
            );
        }
        out
    }

    #[test]
    fn sequences_end_and_splits_partition_the_rows_deterministically() {
        let cols = vec![
            Field::new("id", DataType::Int32, true),
            Field::new("name", DataType::Utf8, true),
            Field::new("x", DataType::Float64, true),
        ];
        let opts = [
            ("fields.id.kind", "sequence"),
            ("fields.id.start", "1"),
            ("fields.id.end", "20"),
            ("fields.name.length", "5"),
            ("fields.x.min", "1"),
            ("fields.x.max", "2"),
            ("datagen.split.num", "3"),
        ];
        let d = open(cols.clone(), &opts).unwrap();
        let mut all: Vec<String> = (0..3).flat_map(|s| read_all(&d, s, 0)).collect();
        assert_eq!(all.len(), 20);
        // Reading a split from an offset gives the same rows as before.
        let tail = read_all(&d, 1, 3);
        let full = read_all(&d, 1, 0);
        assert_eq!(tail, full[3..].to_vec());
        // One split or three: the same rows.
        let mut one_opts = opts.to_vec();
        one_opts.retain(|(k, _)| *k != "datagen.split.num");
        let one = open(cols, &one_opts).unwrap();
        let mut single = read_all(&one, 0, 0);
        all.sort();
        single.sort();
        assert_eq!(all, single);
    }

    #[test]
    fn bad_options_are_errors() {
        let cols = vec![Field::new("id", DataType::Int32, true)];
        for (opts, want) in [
            (vec![("fields.id.kind", "sequential")], "sequence or random"),
            (
                vec![("fields.id.start", "x"), ("fields.id.kind", "sequence")],
                "fields.id.start",
            ),
            (
                vec![("fields.nope.kind", "random")],
                "unknown option \"fields.nope.kind\"",
            ),
            (vec![("fields.id.max", "99999999999")], "fields.id.max"),
            (vec![("datagen.split.num", "0")], "at least 1"),
        ] {
            let e = open(cols.clone(), &opts).unwrap_err().to_string();
            assert!(e.contains(want), "{opts:?}: {e}");
        }
        assert_eq!(
            duration_us("2h 37min"),
            Some((2 * 3600 + 37 * 60) * 1_000_000)
        );
        assert_eq!(duration_us("1 day"), Some(86_400_000_000));
        assert_eq!(duration_us("soon"), None);
    }
}
