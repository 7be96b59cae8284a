//! Record ids in the book server's format: a prefix and 8 hex digits
//! (`ch_1a2b3c4d`).
//!
//! Eight hex digits are only 32 bits, so random ids would collide after a few
//! tens of thousands of records (a benchmark makes that many in a second) and a
//! collision would make the checker match an order to the wrong charge. Ids are
//! therefore a counter pushed through a bijection of `u32`: unique for 4 billion
//! records, random-looking, and reproducible from the seed.

/// Hands out unique ids for one kind of record.
#[derive(Debug, Clone)]
pub struct IdSequence {
    prefix: &'static str,
    next: u32,
    key: u32,
}

impl IdSequence {
    /// A sequence whose order depends on `seed`.
    pub fn new(prefix: &'static str, seed: u64) -> Self {
        Self {
            prefix,
            next: 0,
            // Mixed, so that small seeds do not start at ids like `ch_00000000`.
            key: scramble((seed ^ (seed >> 32)) as u32 ^ 0x9e37_79b9),
        }
    }

    /// The next id, never one this sequence gave before (until it wraps at 2^32).
    pub fn next_id(&mut self) -> String {
        let n = self.next;
        self.next = self.next.wrapping_add(1);
        format!("{}{:08x}", self.prefix, scramble(n ^ self.key))
    }
}

/// A bijection on `u32` (each step is invertible: xor-shift and multiplication
/// by an odd constant), so distinct inputs give distinct ids.
fn scramble(mut x: u32) -> u32 {
    x ^= x >> 16;
    x = x.wrapping_mul(0x7feb_352d);
    x ^= x >> 15;
    x = x.wrapping_mul(0x846c_a68b);
    x ^= x >> 16;
    x
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn ids_have_the_book_format_and_never_repeat() {
        let mut seq = IdSequence::new("ch_", 42);
        let mut seen = HashSet::new();
        for _ in 0..200_000 {
            let id = seq.next_id();
            assert_eq!(id.len(), 11, "{id}");
            assert!(id.starts_with("ch_"));
            assert!(id[3..].chars().all(|c| c.is_ascii_hexdigit()));
            assert!(seen.insert(id), "repeated id");
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_ids() {
        let a: Vec<_> = {
            let mut s = IdSequence::new("em_", 7);
            (0..5).map(|_| s.next_id()).collect()
        };
        let b: Vec<_> = {
            let mut s = IdSequence::new("em_", 7);
            (0..5).map(|_| s.next_id()).collect()
        };
        let c: Vec<_> = {
            let mut s = IdSequence::new("em_", 8);
            (0..5).map(|_| s.next_id()).collect()
        };
        assert_eq!(a, b);
        assert_ne!(a, c);
    }
}
