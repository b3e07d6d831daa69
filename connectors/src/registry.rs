//! Connectors by name: `connector = '…'` → an opened [`Source`].

use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;

use crate::error::ConnectorError;
use crate::{Options, Result, Source};

/// What a source is opened with besides its options.
#[derive(Debug, Clone)]
pub struct SourceContext {
    /// The columns the source produces, in order.
    pub schema: SchemaRef,
    /// When the source was created (ms since the epoch): generators' base
    /// time, so the same source generates the same rows after a restart.
    pub created_ms: i64,
    /// `FORMAT f ENCODE e (options)`, lower-cased, when written.
    pub format: Option<(String, String, std::collections::BTreeMap<String, String>)>,
    /// `INCLUDE kind AS column`: the last columns of `schema`, in order.
    pub include: Vec<(String, String)>,
    /// The primary key's columns (indexes into `schema`).
    pub key: Vec<usize>,
}

/// The connectors that can be named.
pub const CONNECTORS: &[&str] = &["datagen", "kafka", "nexmark"];

/// Opens connector `name` with `options` (all of which must be used).
pub fn open(name: &str, mut options: Options, ctx: &SourceContext) -> Result<Arc<dyn Source>> {
    let source: Arc<dyn Source> = match name {
        "datagen" => Arc::new(crate::datagen::Datagen::new(&mut options, ctx)?),
        "nexmark" => Arc::new(crate::nexmark::Nexmark::new(&mut options, ctx)?),
        "kafka" => Arc::new(crate::kafka::Kafka::new(&mut options, ctx)?),
        other => {
            return Err(ConnectorError::NotSupported(format!(
                "connector \"{other}\" (known connectors: {})",
                CONNECTORS.join(", ")
            )))
        }
    };
    options.finish(name)?;
    Ok(source)
}
