//! UNION ALL: every input's changes, unchanged (Z-sets add).

use datafusion::arrow::datatypes::SchemaRef;

use super::{merged, Inputs, Operator, StepContext};
use crate::{ChangeBatch, Result};

pub struct Union {
    schema: SchemaRef,
}

impl Union {
    pub fn new(schema: SchemaRef) -> Self {
        Self { schema }
    }
}

impl Operator for Union {
    fn step(&mut self, _ctx: &StepContext, inputs: Inputs) -> Result<Option<ChangeBatch>> {
        // Each input's rows under the union's column names.
        let mut out = Vec::new();
        for batch in inputs.into_iter().flatten() {
            let data = crate::batch_with_rows(
                self.schema.clone(),
                batch.data().columns().to_vec(),
                batch.len(),
            )?;
            out.push(batch.with_data(data)?);
        }
        merged(out)
    }
}
