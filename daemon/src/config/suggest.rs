//! "Did you mean": the closest known name to a misspelt one.

/// Edit distance (insertions, deletions, substitutions; Levenshtein) between
/// two short ASCII-case-folded strings.
fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().flat_map(char::to_lowercase).collect();
    let b: Vec<char> = b.chars().flat_map(char::to_lowercase).collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut current = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitute = previous[j] + usize::from(ca != cb);
            current[j + 1] = substitute.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        previous = current;
    }
    previous[b.len()]
}

/// The known name nearest to `name`, if it is near enough to be a typo of
/// it: at most 2 edits, and fewer than half of `name`'s length.
pub fn closest<'a>(name: &str, known: &[&'a str]) -> Option<&'a str> {
    let limit = 2.min(name.chars().count().saturating_sub(1) / 2);
    known
        .iter()
        .map(|k| (distance(name, k), *k))
        .filter(|(d, _)| *d <= limit && *d > 0)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn near_names_are_suggested() {
        assert_eq!(closest("queus", &["queues", "mtu"]), Some("queues"));
        assert_eq!(closest("SLUICE_XDPMODE", &["SLUICE_XDP_MODE"]), Some("SLUICE_XDP_MODE"));
        assert_eq!(closest("debg", &["debug", "info"]), Some("debug"));
        assert_eq!(closest("nginx", &["queues", "mtu"]), None);
        assert_eq!(closest("ab", &["ac"]), None);
        assert_eq!(closest("queues", &["queues"]), None);
    }
}
