//! Freshet connectors: sources and sinks (Kafka, CDC formats, generators). Not built yet; nothing here so far.
