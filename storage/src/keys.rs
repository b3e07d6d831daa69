//! Key layout: `table id (u32, big-endian) | memcomparable(key columns)`.
//!
//! Table id 0 is the meta keyspace (catalog, epoch counter, id allocators);
//! user relations get ids from 1 up. Because the id is big-endian and the key
//! columns are memcomparable, a byte-wise RocksDB range scan over
//! `[prefix(id) | enc(lo), prefix(id) | enc(hi))` is a scan of the SQL range.

/// The reserved id of the meta keyspace.
pub const META_TABLE_ID: u32 = 0;

/// The 4-byte prefix every key of a table starts with.
pub fn table_prefix(table_id: u32) -> [u8; 4] {
    table_id.to_be_bytes()
}

/// The first key after every key of `table_id` (exclusive upper bound of a full
/// table scan).
pub fn table_end(table_id: u32) -> [u8; 4] {
    (table_id + 1).to_be_bytes()
}

/// The table id a key belongs to: the inverse of [`table_prefix`]. A key
/// shorter than 4 bytes sorts before every key of the table its bytes
/// start, so it counts as that table.
pub fn table_id(key: &[u8]) -> u32 {
    let mut t = [0u8; 4];
    let n = key.len().min(4);
    t[..n].copy_from_slice(&key[..n]);
    u32::from_be_bytes(t)
}

/// A key in the meta keyspace.
pub fn meta_key(name: &str) -> Vec<u8> {
    let mut k = table_prefix(META_TABLE_ID).to_vec();
    k.extend_from_slice(name.as_bytes());
    k
}

/// The smallest key strictly greater than every key that starts with `prefix`
/// (`None` if there is none, i.e. the prefix is all 0xff).
pub fn prefix_successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut out = prefix.to_vec();
    while let Some(last) = out.pop() {
        if last < 0xff {
            out.push(last + 1);
            return Some(out);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn successor_carries() {
        assert_eq!(prefix_successor(&[1, 2]), Some(vec![1, 3]));
        assert_eq!(prefix_successor(&[1, 0xff]), Some(vec![2]));
        assert_eq!(prefix_successor(&[0xff]), None);
    }

    #[test]
    fn table_ranges_are_disjoint_and_ordered() {
        assert!(table_prefix(1).as_slice() < table_prefix(2).as_slice());
        assert_eq!(table_end(1), table_prefix(2));
        assert!(meta_key("zzz").as_slice() < table_prefix(1).as_slice());
    }

    #[test]
    fn table_id_inverts_the_prefix() {
        let mut key = table_prefix(0x0102_0304).to_vec();
        key.extend_from_slice(b"row");
        assert_eq!(table_id(&key), 0x0102_0304);
        assert_eq!(table_id(&meta_key("epoch")), META_TABLE_ID);
        assert_eq!(table_id(&[0, 0, 1]), 256);
    }
}
