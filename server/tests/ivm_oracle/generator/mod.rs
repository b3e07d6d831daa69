mod expr;
mod query;
mod tables;
mod window;

use std::collections::BTreeSet;

use crate::schema::*;
use freshet_sqllogictest::rng::Rng;

// ---------------------------------------------------------------------------
// The generator
// ---------------------------------------------------------------------------

pub(crate) struct CaseGen {
    pub(crate) rng: Rng,
    pub(crate) alias_n: u32,
    cte_n: u32,
    /// Whether the aggregate query being generated has a string_agg already:
    /// the batch engine rejects two ordered aggregates with different orders.
    ordered_agg_used: bool,
    /// Constructs used by the view being generated (for the rejection summary).
    pub(crate) tags: BTreeSet<&'static str>,
}

impl CaseGen {
    pub(crate) fn new(seed: u64) -> CaseGen {
        CaseGen {
            rng: Rng::new(seed),
            alias_n: 0,
            cte_n: 0,
            ordered_agg_used: false,
            tags: BTreeSet::new(),
        }
    }

    fn tag(&mut self, t: &'static str) {
        self.tags.insert(t);
    }

    fn alias(&mut self) -> String {
        self.alias_n += 1;
        format!("a{}", self.alias_n)
    }

    fn any_ty(&mut self) -> Ty {
        ALL_TYS[self.rng.weighted(&[4, 3, 2, 2])]
    }
}
