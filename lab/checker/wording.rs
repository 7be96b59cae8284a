//! The small pieces of English every violation is written with: counted
//! nouns, lists of ids and items, and the one order a set of ids names.

use fake_services::Record;

/// "2 successful charges", "1 confirmation email".
pub fn amount(n: usize, (one, many): (&str, &str)) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// The records' ids, comma-separated.
pub fn ids(records: &[&Record]) -> String {
    records
        .iter()
        .map(|r| r.id.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// A list of items for a sentence: "a", "a and b", "a, b and c".
pub fn listed(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// The one order a set of ids names, if they all name the same one.
pub fn single(mut ids: impl Iterator<Item = i64>) -> Option<i64> {
    let first = ids.next()?;
    ids.all(|id| id == first).then_some(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counted_nouns_agree_with_their_number() {
        let noun = ("charge", "charges");
        assert_eq!(amount(0, noun), "0 charges");
        assert_eq!(amount(1, noun), "1 charge");
        assert_eq!(amount(2, noun), "2 charges");
    }

    #[test]
    fn lists_read_as_a_sentence() {
        let items = |xs: &[&str]| xs.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(listed(&items(&[])), "");
        assert_eq!(listed(&items(&["a"])), "a");
        assert_eq!(listed(&items(&["a", "b"])), "a and b");
        assert_eq!(listed(&items(&["a", "b", "c"])), "a, b and c");
    }

    #[test]
    fn single_names_an_order_only_when_all_ids_agree() {
        assert_eq!(single([].into_iter()), None);
        assert_eq!(single([3, 3].into_iter()), Some(3));
        assert_eq!(single([3, 4].into_iter()), None);
    }
}
