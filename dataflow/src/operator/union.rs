//! UNION ALL: every input's changes, unchanged (Z-sets add).

use datafusion::arrow::datatypes::SchemaRef;

use super::{Operator, StepContext};
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
    fn name(&self) -> &str {
        "Union"
    }

    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn process(
        &mut self,
        _ctx: &StepContext,
        _input: usize,
        batch: ChangeBatch,
    ) -> Result<Vec<ChangeBatch>> {
        let data = crate::batch_with_rows(
            self.schema.clone(),
            batch.data().columns().to_vec(),
            batch.len(),
        )?;
        Ok(vec![batch.with_data(data)?])
    }
}
