//! Freshet dataflow: change batches, incremental operators, steps and epochs. Not built yet (materialized views come next); nothing here so far.
