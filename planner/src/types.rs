//! SQL column types: how a declared type is stored (Arrow), named (Postgres)
//! and carried in field metadata so tools see the declared type.

use std::collections::HashMap;

use datafusion::arrow::datatypes::{DataType, Field, IntervalUnit, TimeUnit};
use datafusion::sql::sqlparser::ast::{
    CharacterLength, DataType as SqlDataType, ExactNumberInfo, TimezoneInfo,
};
use serde::{Deserialize, Serialize};

use crate::{PlannerError, Result};

/// The field metadata key that records a column's declared SQL type (used for
/// `jsonb`, which is stored as Arrow Utf8, and for catalog output).
pub const PG_TYPE_KEY: &str = "freshet.pg_type";

/// Default precision/scale of an unconstrained `numeric` (as DataFusion does).
const NUMERIC_DEFAULT: (u8, i8) = (38, 10);

/// A declared column type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SqlType {
    Bool,
    Int2,
    Int4,
    Int8,
    Float4,
    Float8,
    Numeric {
        precision: Option<u8>,
        scale: Option<i8>,
    },
    Text,
    Varchar(Option<u32>),
    Bytea,
    Date,
    Time,
    Timestamp,
    TimestampTz,
    Interval,
    Jsonb,
    /// A one-dimensional array (`array_agg` results in views).
    Array(Box<SqlType>),
}

impl SqlType {
    pub fn from_ast(t: &SqlDataType) -> Result<SqlType> {
        use SqlDataType as D;
        Ok(match t {
            D::Bool | D::Boolean => SqlType::Bool,
            D::SmallInt(_) | D::Int2(_) => SqlType::Int2,
            D::Int(_) | D::Integer(_) | D::Int4(_) => SqlType::Int4,
            D::BigInt(_) | D::Int8(_) => SqlType::Int8,
            D::Real | D::Float4 => SqlType::Float4,
            D::DoublePrecision | D::Float8 | D::Double(_) => SqlType::Float8,
            D::Float(ExactNumberInfo::Precision(p)) if *p <= 24 => SqlType::Float4,
            D::Float(_) => SqlType::Float8,
            D::Numeric(info) | D::Decimal(info) => {
                let (precision, scale) = match info {
                    ExactNumberInfo::None => (None, None),
                    ExactNumberInfo::Precision(p) => (Some(*p), Some(0)),
                    ExactNumberInfo::PrecisionAndScale(p, s) => (Some(*p), Some(*s)),
                };
                if let Some(p) = precision {
                    if p == 0 || p > 38 {
                        return Err(PlannerError::not_supported(format!(
                            "NUMERIC precision {p} (Freshet supports 1 to 38)"
                        )));
                    }
                }
                SqlType::Numeric {
                    precision: precision.map(|p| p as u8),
                    scale: scale.map(|s| s as i8),
                }
            }
            D::Text | D::String(_) => SqlType::Text,
            D::Varchar(len) | D::CharacterVarying(len) => SqlType::Varchar(match len {
                Some(CharacterLength::IntegerLength { length, .. }) => Some(*length as u32),
                _ => None,
            }),
            D::Bytea => SqlType::Bytea,
            D::Date => SqlType::Date,
            D::Time(_, TimezoneInfo::None | TimezoneInfo::WithoutTimeZone) => SqlType::Time,
            D::Timestamp(_, TimezoneInfo::None | TimezoneInfo::WithoutTimeZone) => {
                SqlType::Timestamp
            }
            D::Timestamp(_, TimezoneInfo::Tz | TimezoneInfo::WithTimeZone) => SqlType::TimestampTz,
            D::Interval { .. } => SqlType::Interval,
            D::JSONB | D::JSON => SqlType::Jsonb,
            D::Custom(name, _) => match name.to_string().to_ascii_lowercase().as_str() {
                "timestamptz" => SqlType::TimestampTz,
                "int2" => SqlType::Int2,
                "int4" => SqlType::Int4,
                "int8" => SqlType::Int8,
                "float4" => SqlType::Float4,
                "float8" => SqlType::Float8,
                "jsonb" | "json" => SqlType::Jsonb,
                "bool" => SqlType::Bool,
                other => return Err(PlannerError::not_supported(format!("type \"{other}\""))),
            },
            other => return Err(PlannerError::not_supported(format!("type {other}"))),
        })
    }

    pub fn arrow(&self) -> DataType {
        match self {
            SqlType::Bool => DataType::Boolean,
            SqlType::Int2 => DataType::Int16,
            SqlType::Int4 => DataType::Int32,
            SqlType::Int8 => DataType::Int64,
            SqlType::Float4 => DataType::Float32,
            SqlType::Float8 => DataType::Float64,
            SqlType::Numeric { precision, scale } => DataType::Decimal128(
                precision.unwrap_or(NUMERIC_DEFAULT.0),
                scale.unwrap_or(if precision.is_some() {
                    0
                } else {
                    NUMERIC_DEFAULT.1
                }),
            ),
            SqlType::Text | SqlType::Varchar(_) | SqlType::Jsonb => DataType::Utf8,
            SqlType::Bytea => DataType::Binary,
            SqlType::Date => DataType::Date32,
            SqlType::Time => DataType::Time64(TimeUnit::Microsecond),
            SqlType::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, None),
            SqlType::TimestampTz => {
                DataType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into()))
            }
            SqlType::Interval => DataType::Interval(IntervalUnit::MonthDayNano),
            SqlType::Array(t) => {
                DataType::List(std::sync::Arc::new(Field::new_list_field(t.arrow(), true)))
            }
        }
    }

    /// The SQL type of a computed column (a view's) of Arrow type `f`, if
    /// there is one; see [`SqlType::conformed`] for the Arrow types that
    /// must be cast first.
    pub fn from_field(f: &Field) -> Option<SqlType> {
        let declared = f.metadata().get(PG_TYPE_KEY).map(String::as_str);
        Some(match f.data_type() {
            DataType::Boolean => SqlType::Bool,
            DataType::Int16 => SqlType::Int2,
            DataType::Int32 => SqlType::Int4,
            DataType::Int64 => SqlType::Int8,
            DataType::Float32 => SqlType::Float4,
            DataType::Float64 => SqlType::Float8,
            DataType::Decimal128(p, s) => SqlType::Numeric {
                precision: Some(*p),
                scale: Some(*s),
            },
            DataType::Utf8 => match declared {
                Some("jsonb") => SqlType::Jsonb,
                Some("varchar") => SqlType::Varchar(None),
                _ => SqlType::Text,
            },
            DataType::Binary => SqlType::Bytea,
            DataType::Date32 => SqlType::Date,
            DataType::Time64(TimeUnit::Microsecond) => SqlType::Time,
            DataType::Timestamp(TimeUnit::Microsecond, None) => SqlType::Timestamp,
            DataType::Timestamp(TimeUnit::Microsecond, Some(_)) => SqlType::TimestampTz,
            DataType::Interval(IntervalUnit::MonthDayNano) => SqlType::Interval,
            DataType::List(item) => match SqlType::from_field(item)? {
                SqlType::Array(_) => return None,
                t => SqlType::Array(Box::new(t)),
            },
            _ => return None,
        })
    }

    /// The Arrow type a computed column of type `dt` is cast to so that it
    /// has a SQL type (`row_number()`'s UInt64 becomes bigint, string views
    /// become text, …), or `None` if it has one already or cannot.
    pub fn conformed(dt: &DataType) -> Option<DataType> {
        Some(match dt {
            DataType::UInt8 | DataType::Int8 => DataType::Int16,
            DataType::UInt16 => DataType::Int32,
            DataType::UInt32 | DataType::UInt64 => DataType::Int64,
            DataType::Float16 => DataType::Float32,
            DataType::Utf8View | DataType::LargeUtf8 | DataType::Null => DataType::Utf8,
            DataType::BinaryView | DataType::LargeBinary => DataType::Binary,
            DataType::Timestamp(u, tz) if *u != TimeUnit::Microsecond => {
                DataType::Timestamp(TimeUnit::Microsecond, tz.clone())
            }
            DataType::Time64(TimeUnit::Nanosecond) | DataType::Time32(_) => {
                DataType::Time64(TimeUnit::Microsecond)
            }
            DataType::Date64 => DataType::Date32,
            // timestamp - timestamp: an interval in PostgreSQL.
            DataType::Duration(_) => DataType::Interval(IntervalUnit::MonthDayNano),
            DataType::Decimal256(p, s) if *p <= 38 => DataType::Decimal128(*p, *s),
            DataType::List(item) | DataType::LargeList(item) => {
                let inner = SqlType::conformed(item.data_type());
                if inner.is_none() && matches!(dt, DataType::List(_)) {
                    return None;
                }
                DataType::List(std::sync::Arc::new(Field::new_list_field(
                    inner.unwrap_or_else(|| item.data_type().clone()),
                    true,
                )))
            }
            _ => return None,
        })
    }

    /// The name `format_type()` / `\d` print for this type.
    pub fn pg_name(&self) -> String {
        match self {
            SqlType::Bool => "boolean".into(),
            SqlType::Int2 => "smallint".into(),
            SqlType::Int4 => "integer".into(),
            SqlType::Int8 => "bigint".into(),
            SqlType::Float4 => "real".into(),
            SqlType::Float8 => "double precision".into(),
            SqlType::Numeric {
                precision: Some(p),
                scale,
            } => {
                format!("numeric({},{})", p, scale.unwrap_or(0))
            }
            SqlType::Numeric { .. } => "numeric".into(),
            SqlType::Text => "text".into(),
            SqlType::Varchar(Some(n)) => format!("character varying({n})"),
            SqlType::Varchar(None) => "character varying".into(),
            SqlType::Bytea => "bytea".into(),
            SqlType::Date => "date".into(),
            SqlType::Time => "time without time zone".into(),
            SqlType::Timestamp => "timestamp without time zone".into(),
            SqlType::TimestampTz => "timestamp with time zone".into(),
            SqlType::Interval => "interval".into(),
            SqlType::Jsonb => "jsonb".into(),
            SqlType::Array(t) => format!("{}[]", t.pg_name()),
        }
    }

    /// The Postgres type OID.
    pub fn pg_oid(&self) -> u32 {
        match self {
            SqlType::Bool => 16,
            SqlType::Int2 => 21,
            SqlType::Int4 => 23,
            SqlType::Int8 => 20,
            SqlType::Float4 => 700,
            SqlType::Float8 => 701,
            SqlType::Numeric { .. } => 1700,
            SqlType::Text => 25,
            SqlType::Varchar(_) => 1043,
            SqlType::Bytea => 17,
            SqlType::Date => 1082,
            SqlType::Time => 1083,
            SqlType::Timestamp => 1114,
            SqlType::TimestampTz => 1184,
            SqlType::Interval => 1186,
            SqlType::Jsonb => 3802,
            SqlType::Array(t) => match t.as_ref() {
                SqlType::Bool => 1000,
                SqlType::Int2 => 1005,
                SqlType::Int4 => 1007,
                SqlType::Int8 => 1016,
                SqlType::Float4 => 1021,
                SqlType::Float8 => 1022,
                SqlType::Numeric { .. } => 1231,
                SqlType::Varchar(_) => 1015,
                SqlType::Bytea => 1001,
                SqlType::Date => 1182,
                SqlType::Time => 1183,
                SqlType::Timestamp => 1115,
                SqlType::TimestampTz => 1185,
                SqlType::Interval => 1187,
                SqlType::Jsonb => 3807,
                _ => 1009,
            },
        }
    }

    /// The Postgres type modifier (`atttypmod`), -1 when there is none.
    pub fn pg_typmod(&self) -> i32 {
        match self {
            SqlType::Numeric {
                precision: Some(p),
                scale,
            } => ((*p as i32) << 16 | (scale.unwrap_or(0) as i32 & 0xffff)) + 4,
            SqlType::Varchar(Some(n)) => *n as i32 + 4,
            _ => -1,
        }
    }

    /// The Arrow field of a column of this type. `jsonb` is marked in the
    /// metadata so the wire layer reports it as `jsonb`, not `text`.
    pub fn field(&self, name: &str, nullable: bool) -> Field {
        let f = Field::new(name, self.arrow(), nullable);
        match self {
            SqlType::Jsonb => f.with_metadata(HashMap::from([(
                PG_TYPE_KEY.to_string(),
                "jsonb".to_string(),
            )])),
            SqlType::Varchar(_) => f.with_metadata(HashMap::from([(
                PG_TYPE_KEY.to_string(),
                "varchar".to_string(),
            )])),
            _ => f,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_typmod_matches_postgres() {
        // numeric(18,4) is stored by Postgres as ((18 << 16) | 4) + 4.
        let t = SqlType::Numeric {
            precision: Some(18),
            scale: Some(4),
        };
        assert_eq!(t.pg_typmod(), ((18 << 16) | 4) + 4);
        assert_eq!(t.arrow(), DataType::Decimal128(18, 4));
        assert_eq!(SqlType::Varchar(Some(10)).pg_typmod(), 14);
    }
}
