//! Freshet connectors (DESIGN.md, "Sources, the scheduler, and exactly
//! once"): what brings records in from outside. A connector is opened by
//! name from the [`registry`] with its validated options and the columns it
//! must produce; it is split ([`source::Source::splits`]), and each split is
//! read by a [`source::SplitReader`] that yields chunks of rows with the
//! split's position after them — an offset like Kafka's — so a reader
//! re-opened at a committed offset continues exactly where the committed
//! state ends.
//!
//! Nothing here knows the catalog or the engine: connectors get their
//! options and an Arrow schema, and hand back Arrow batches.

pub mod datagen;
pub mod error;
pub mod format;
pub mod kafka;
pub mod nexmark;
pub mod options;
pub mod registry;
pub mod source;

pub use error::{ConnectorError, Result};
pub use options::Options;
pub use source::{Chunk, Source, SplitReader};
