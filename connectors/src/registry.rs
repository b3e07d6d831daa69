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
}

/// The connectors that can be named.
pub const CONNECTORS: &[&str] = &["datagen", "nexmark"];

/// Opens connector `name` with `options` (all of which must be used).
pub fn open(name: &str, mut options: Options, ctx: &SourceContext) -> Result<Arc<dyn Source>> {
    let source: Arc<dyn Source> = match name {
        "datagen" => Arc::new(crate::datagen::Datagen::new(&mut options, ctx)?),
        "nexmark" => Arc::new(crate::nexmark::Nexmark::new(&mut options, ctx)?),
        "kafka" => {
            return Err(ConnectorError::NotSupported(
                "connector \"kafka\" (not built yet)".into(),
            ))
        }
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
