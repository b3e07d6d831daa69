//! `connector = 'nexmark'`: the Nexmark auction events, as RisingWave's
//! connector of the same name generates them (the same `nexmark` crate:
//! people, auctions and bids in proportions 1:3:46, the same field
//! distributions, event times from `nexmark.base.time`, by default the
//! source's creation). `nexmark.table.type` (Person | Auction | Bid) picks
//! the events a source yields; `nexmark.event.num` counts events of every
//! type (a Bid source of 50,000 events yields 46,000 bids);
//! `nexmark.min.event.gap.in.ns` (default 100,000: 10,000 events/s, 0 for
//! no limit) paces them; `nexmark.split.num` splits them (split `s` of `n`
//! takes every `n`-th event of its type from the `s`-th on) and
//! `nexmark.max.chunk.size` bounds a chunk.
//!
//! An event is a pure function of its number, so a split's offset (the
//! events of its type it has yielded) says exactly where it resumes.

use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, Int64Array, RecordBatch, StringArray, TimestampMillisecondArray,
};
use datafusion::arrow::compute::{cast_with_options, CastOptions};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use nexmark::config::NexmarkConfig;
use nexmark::event::{Event, EventType};
use nexmark::EventGenerator;

use crate::error::{invalid, ConnectorError};
use crate::registry::SourceContext;
use crate::source::{Chunk, GeneratorPosition, Pace};
use crate::{Options, Result, Source, SplitReader};

#[derive(Clone)]
pub struct Nexmark {
    schema: SchemaRef,
    /// For each output column, its column in the table type's full row.
    columns: Vec<usize>,
    table: EventType,
    config: NexmarkConfig,
    event_num: Option<u64>,
    max_chunk: usize,
    /// Events (of every type) per second, when paced.
    rate: Option<f64>,
    splits: u64,
}

/// The full row of each table type, as RisingWave declares it.
pub fn full_schema(table: EventType) -> SchemaRef {
    let ts = || DataType::Timestamp(TimeUnit::Millisecond, None);
    let f = |n: &str, t: DataType| Field::new(n, t, true);
    use DataType::{Int64, Utf8};
    Arc::new(Schema::new(match table {
        EventType::Person => vec![
            f("id", Int64),
            f("name", Utf8),
            f("email_address", Utf8),
            f("credit_card", Utf8),
            f("city", Utf8),
            f("state", Utf8),
            f("date_time", ts()),
            f("extra", Utf8),
        ],
        EventType::Auction => vec![
            f("id", Int64),
            f("item_name", Utf8),
            f("description", Utf8),
            f("initial_bid", Int64),
            f("reserve", Int64),
            f("date_time", ts()),
            f("expires", ts()),
            f("seller", Int64),
            f("category", Int64),
            f("extra", Utf8),
        ],
        EventType::Bid => vec![
            f("auction", Int64),
            f("bidder", Int64),
            f("price", Int64),
            f("channel", Utf8),
            f("url", Utf8),
            f("date_time", ts()),
            f("extra", Utf8),
        ],
    }))
}

/// Parses `nexmark.table.type`.
pub fn table_type(v: &str) -> Result<EventType> {
    match v.trim().to_ascii_lowercase().as_str() {
        "person" => Ok(EventType::Person),
        "auction" => Ok(EventType::Auction),
        "bid" => Ok(EventType::Bid),
        _ => Err(invalid(format!(
            "invalid value \"{v}\" for option \"nexmark.table.type\" (Person, Auction or Bid)"
        ))),
    }
}

impl Nexmark {
    pub fn new(options: &mut Options, ctx: &SourceContext) -> Result<Nexmark> {
        let table = match options.take("nexmark.table.type") {
            Some(v) => table_type(&v)?,
            None => {
                return Err(ConnectorError::NotSupported(
                    "a nexmark source without nexmark.table.type (the combined event stream)"
                        .into(),
                ))
            }
        };
        let event_num: i64 = options.parse("nexmark.event.num", -1)?;
        let max_chunk: usize = options.parse("nexmark.max.chunk.size", 1024)?;
        let gap_ns: u64 = options.parse("nexmark.min.event.gap.in.ns", 100_000)?;
        let splits: u64 = options.parse("nexmark.split.num", 1)?;
        if splits == 0 || max_chunk == 0 {
            return Err(invalid(
                "nexmark.split.num and nexmark.max.chunk.size must be at least 1",
            ));
        }
        let mut config = NexmarkConfig {
            base_time: ctx.created_ms.max(0) as u64,
            ..Default::default()
        };
        macro_rules! usize_options {
            ($($key:literal => $field:ident),* $(,)?) => {
                $(config.$field = options.parse($key, config.$field)?;)*
            };
        }
        usize_options! {
            "nexmark.active.people" => active_people,
            "nexmark.in.flight.auctions" => in_flight_auctions,
            "nexmark.out.of.order.group.size" => out_of_order_group_size,
            "nexmark.avg.person.byte.size" => avg_person_byte_size,
            "nexmark.avg.auction.byte.size" => avg_auction_byte_size,
            "nexmark.avg.bid.byte.size" => avg_bid_byte_size,
            "nexmark.hot.seller.ratio" => hot_seller_ratio,
            "nexmark.hot.auction.ratio" => hot_auction_ratio,
            "nexmark.hot.bidder.ratio" => hot_bidder_ratio,
            "nexmark.hot.channel.ratio" => hot_channel_ratio,
            "nexmark.first.event.id" => first_event_id,
            "nexmark.first.event.number" => first_event_number,
            "nexmark.num.categories" => num_categories,
            "nexmark.auction.id.lead" => auction_id_lead,
            "nexmark.person.proportion" => person_proportion,
            "nexmark.auction.proportion" => auction_proportion,
            "nexmark.bid.proportion" => bid_proportion,
            "nexmark.first.auction.id" => first_auction_id,
            "nexmark.first.person.id" => first_person_id,
            "nexmark.first.category.id" => first_category_id,
            "nexmark.person.id.lead" => person_id_lead,
            "nexmark.sine.approx.steps" => sine_approx_steps,
            "nexmark.rate.period" => rate_period,
            "nexmark.first.event.rate" => first_rate,
            "nexmark.next.event.rate" => next_rate,
            "nexmark.us.per.unit" => us_per_unit,
        }
        config.base_time = options.parse("nexmark.base.time", config.base_time)?;
        if config.person_proportion + config.auction_proportion + config.bid_proportion == 0
            || config.out_of_order_group_size == 0
        {
            return Err(invalid(
                "nexmark proportions must not all be 0, nor the out-of-order group size",
            ));
        }
        let full = full_schema(table);
        let mut columns = Vec::new();
        for f in ctx.schema.fields() {
            let i = full.index_of(f.name()).map_err(|_| {
                invalid(format!(
                    "column \"{}\" is not a column of nexmark's {table:?} (its columns: {})",
                    f.name(),
                    full.fields()
                        .iter()
                        .map(|f| f.name().as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })?;
            let from = full.field(i).data_type();
            if !datafusion::arrow::compute::can_cast_types(from, f.data_type()) {
                return Err(invalid(format!(
                    "column \"{}\" of nexmark's {table:?} cannot be of type {}",
                    f.name(),
                    f.data_type()
                )));
            }
            columns.push(i);
        }
        Ok(Nexmark {
            schema: ctx.schema.clone(),
            columns,
            table,
            config,
            event_num: (event_num >= 0).then_some(event_num as u64),
            max_chunk,
            rate: (gap_ns > 0).then(|| 1e9 / gap_ns as f64),
            splits,
        })
    }

    /// This type's share of the events: (events of the type per cycle,
    /// events before them in a cycle, cycle length).
    fn proportion(&self) -> (u64, u64, u64) {
        let c = &self.config;
        let d = (c.person_proportion + c.auction_proportion + c.bid_proportion) as u64;
        match self.table {
            EventType::Person => (c.person_proportion as u64, 0, d),
            EventType::Auction => (c.auction_proportion as u64, c.person_proportion as u64, d),
            EventType::Bid => (
                c.bid_proportion as u64,
                (c.person_proportion + c.auction_proportion) as u64,
                d,
            ),
        }
    }

    /// Events of this source's type among the first `events` events.
    fn of_type(&self, events: u64) -> u64 {
        let (p, before, d) = self.proportion();
        (events / d) * p + (events % d).saturating_sub(before).min(p)
    }

    fn rows(&self, events: &[Event]) -> Result<RecordBatch> {
        let full = full_schema(self.table);
        let n = events.len();
        let ints = |f: &dyn Fn(&Event) -> u64| -> ArrayRef {
            Arc::new(Int64Array::from(
                events.iter().map(|e| f(e) as i64).collect::<Vec<_>>(),
            ))
        };
        let strs = |f: &dyn Fn(&Event) -> &str| -> ArrayRef {
            Arc::new(events.iter().map(|e| Some(f(e))).collect::<StringArray>())
        };
        let times = |f: &dyn Fn(&Event) -> u64| -> ArrayRef {
            Arc::new(TimestampMillisecondArray::from(
                events.iter().map(|e| f(e) as i64).collect::<Vec<_>>(),
            ))
        };
        macro_rules! field {
            ($ty:ident, $e:ident => $body:expr) => {
                |ev: &Event| match ev {
                    Event::$ty($e) => $body,
                    _ => unreachable!("a type-filtered generator yields one type"),
                }
            };
        }
        let mut out: Vec<ArrayRef> = Vec::with_capacity(self.columns.len());
        for (i, &c) in self.columns.iter().enumerate() {
            let a: ArrayRef = match (self.table, c) {
                (EventType::Person, 0) => ints(&field!(Person, p => p.id as u64)),
                (EventType::Person, 1) => strs(&field!(Person, p => p.name.as_str())),
                (EventType::Person, 2) => strs(&field!(Person, p => p.email_address.as_str())),
                (EventType::Person, 3) => strs(&field!(Person, p => p.credit_card.as_str())),
                (EventType::Person, 4) => strs(&field!(Person, p => p.city.as_str())),
                (EventType::Person, 5) => strs(&field!(Person, p => p.state.as_str())),
                (EventType::Person, 6) => times(&field!(Person, p => p.date_time)),
                (EventType::Person, _) => strs(&field!(Person, p => p.extra.as_str())),
                (EventType::Auction, 0) => ints(&field!(Auction, a => a.id as u64)),
                (EventType::Auction, 1) => strs(&field!(Auction, a => a.item_name.as_str())),
                (EventType::Auction, 2) => strs(&field!(Auction, a => a.description.as_str())),
                (EventType::Auction, 3) => ints(&field!(Auction, a => a.initial_bid as u64)),
                (EventType::Auction, 4) => ints(&field!(Auction, a => a.reserve as u64)),
                (EventType::Auction, 5) => times(&field!(Auction, a => a.date_time)),
                (EventType::Auction, 6) => times(&field!(Auction, a => a.expires)),
                (EventType::Auction, 7) => ints(&field!(Auction, a => a.seller as u64)),
                (EventType::Auction, 8) => ints(&field!(Auction, a => a.category as u64)),
                (EventType::Auction, _) => strs(&field!(Auction, a => a.extra.as_str())),
                (EventType::Bid, 0) => ints(&field!(Bid, b => b.auction as u64)),
                (EventType::Bid, 1) => ints(&field!(Bid, b => b.bidder as u64)),
                (EventType::Bid, 2) => ints(&field!(Bid, b => b.price as u64)),
                (EventType::Bid, 3) => strs(&field!(Bid, b => b.channel.as_str())),
                (EventType::Bid, 4) => strs(&field!(Bid, b => b.url.as_str())),
                (EventType::Bid, 5) => times(&field!(Bid, b => b.date_time)),
                (EventType::Bid, _) => strs(&field!(Bid, b => b.extra.as_str())),
            };
            let want = self.schema.field(i).data_type();
            let a = if a.data_type() == want {
                a
            } else {
                cast_with_options(&a, want, &CastOptions::default())?
            };
            out.push(a);
        }
        let _ = full;
        Ok(RecordBatch::try_new_with_options(
            self.schema.clone(),
            out,
            &datafusion::arrow::array::RecordBatchOptions::new().with_row_count(Some(n)),
        )?)
    }
}

impl Source for Nexmark {
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
        let split = split as u64;
        let end = self.event_num.map(|e| {
            let of_type = self.of_type(e);
            if of_type > split {
                (of_type - split).div_ceil(self.splits)
            } else {
                0
            }
        });
        let (p, _, d) = self.proportion();
        let rate = self
            .rate
            .map(|r| r * p as f64 / d as f64 / self.splits as f64);
        let generator = EventGenerator::new(self.config.clone())
            .with_offset(split + offset * self.splits)
            .with_step(self.splits)
            .with_type_filter(self.table);
        Ok(Box::new(NexmarkReader {
            source: Arc::new(self.clone()),
            generator,
            pos: GeneratorPosition {
                offset,
                end,
                pace: if paced { Pace::new(rate, offset) } else { None },
            },
        }))
    }
}

struct NexmarkReader {
    source: Arc<Nexmark>,
    generator: EventGenerator,
    pos: GeneratorPosition,
}

impl SplitReader for NexmarkReader {
    fn next(&mut self, max: usize) -> Result<Option<Chunk>> {
        let Some(n) = self.pos.due(max.min(self.source.max_chunk)) else {
            return Ok(None);
        };
        let events: Vec<Event> = (&mut self.generator).take(n).collect();
        let rows = self.source.rows(&events)?;
        self.pos.offset += n as u64;
        Ok(Some(Chunk::inserts(rows, self.pos.offset)))
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn open(table: &str, opts: &[(&str, &str)]) -> Nexmark {
        let mut map: BTreeMap<String, String> = opts
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        map.insert("nexmark.table.type".into(), table.into());
        let mut options = Options::new(map);
        let t = table_type(table).unwrap();
        let ctx = SourceContext {
            schema: full_schema(t),
            created_ms: 1_700_000_000_000,
            format: None,
            include: Vec::new(),
            key: Vec::new(),
        };
        let n = Nexmark::new(&mut options, &ctx).unwrap();
        options.finish("nexmark").unwrap();
        n
    }

    fn count(n: &Nexmark, split: usize) -> u64 {
        let mut r = n.reader(split, None, false).unwrap();
        let mut total = 0;
        while let Some(c) = r.next(1000).unwrap() {
            total += c.rows.num_rows() as u64;
        }
        total
    }

    #[test]
    fn event_num_counts_events_of_every_type() {
        let opts = [
            ("nexmark.event.num", "50000"),
            ("nexmark.min.event.gap.in.ns", "0"),
        ];
        assert_eq!(count(&open("Bid", &opts), 0), 46_000);
        assert_eq!(count(&open("Auction", &opts), 0), 3_000);
        assert_eq!(count(&open("Person", &opts), 0), 1_000);
        let three = [
            ("nexmark.event.num", "1003"),
            ("nexmark.min.event.gap.in.ns", "0"),
            ("nexmark.split.num", "3"),
        ];
        let n = open("Bid", &three);
        // 20 cycles of 50 (920 bids) and 3 events of the next (no bid).
        assert_eq!((0..3).map(|s| count(&n, s)).sum::<u64>(), 920);
    }

    #[test]
    fn a_split_resumes_at_its_offset_with_the_same_events() {
        let n = open(
            "Bid",
            &[
                ("nexmark.split.num", "2"),
                ("nexmark.min.event.gap.in.ns", "0"),
            ],
        );
        let mut a = n.reader(1, None, false).unwrap();
        let first = a.next(10).unwrap().unwrap();
        let second = a.next(10).unwrap().unwrap();
        let mut b = n.reader(1, Some(first.offset), false).unwrap();
        let again = b.next(10).unwrap().unwrap();
        assert_eq!(second.rows, again.rows);
        assert_ne!(first.rows, second.rows);
    }
}
