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
        let n = self.next_number();
        self.id_of(n)
    }

    /// The number behind the next id: a ledger keeps four bytes, not the
    /// text ([`id_of`](Self::id_of) gives it back).
    pub fn next_number(&mut self) -> u32 {
        let n = self.next;
        self.next = self.next.wrapping_add(1);
        n
    }

    /// The id of the `n`-th number this sequence hands out.
    pub fn id_of(&self, n: u32) -> String {
        format!("{}{:08x}", self.prefix, scramble(n ^ self.key))
    }

    /// The number behind `id`, if it is an id of this sequence's form (a
    /// list's cursor names a record by its id).
    pub fn number_of(&self, id: &str) -> Option<u32> {
        let hex = id.strip_prefix(self.prefix)?;
        if hex.len() != 8 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let scrambled = u32::from_str_radix(hex, 16).ok()?;
        Some(unscramble(scrambled) ^ self.key)
    }

    /// The prefix of its ids (`ch_`).
    pub fn prefix(&self) -> &'static str {
        self.prefix
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

/// The inverse of [`scramble`]: each step undone in reverse order.
fn unscramble(mut x: u32) -> u32 {
    x ^= x >> 16;
    x = x.wrapping_mul(inverse(0x846c_a68b));
    x ^= (x >> 15) ^ (x >> 30);
    x = x.wrapping_mul(inverse(0x7feb_352d));
    x ^= x >> 16;
    x
}

/// The inverse of an odd number modulo 2^32 (Newton's iteration: each step
/// doubles the correct low bits, from 3 to 48).
const fn inverse(odd: u32) -> u32 {
    let mut x = odd;
    let mut i = 0;
    while i < 4 {
        x = x.wrapping_mul(2u32.wrapping_sub(odd.wrapping_mul(x)));
        i += 1;
    }
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
    fn an_id_gives_back_its_number() {
        let mut seq = IdSequence::new("ch_", 42);
        for _ in 0..100_000 {
            let n = seq.next_number();
            assert_eq!(seq.number_of(&seq.id_of(n)), Some(n));
        }
        for n in [0, 1, u32::MAX, 0x8000_0000] {
            assert_eq!(seq.number_of(&seq.id_of(n)), Some(n));
        }
        for bad in [
            "em_00000001",
            "ch_0000001",
            "ch_0000000g",
            "ch_000000001",
            "",
            "ch_",
        ] {
            assert_eq!(seq.number_of(bad), None, "{bad}");
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
