//! Suggestions for an unknown key or section: the closest valid name by edit distance, the
//! section that has the key, or the names there are.

use super::load::SECTIONS;

/// An unknown key of a section, with the closest key of that section, or the section that has
/// it, or the section's keys.
pub(super) fn unknown_key(section: &str, key: &str, origin: &str, sections: &[(&str, &[&str])]) -> String {
    let own = sections.iter().find(|(name, _)| *name == section).map_or(&[][..], |(_, keys)| *keys);
    let unknown = format!("unknown key `{key}` in [{section}]{origin}");
    if let Some(closest) = closest(key, own.iter().copied()) {
        return format!("{unknown}; did you mean `{closest}`?");
    }
    if let Some((other, _)) = sections.iter().find(|(_, keys)| keys.contains(&key)) {
        return format!("{unknown}; did you mean `{key}` in [{other}]?");
    }
    format!("{unknown} (its keys: {})", own.join(", "))
}

/// A top-level name that is not a section: a misspelt section, or a key outside its section.
pub(super) fn unknown_section(name: &str, value: &serde_json::Value, sections: &[(&str, &[&str])]) -> String {
    if !value.is_object()
        && let Some((section, _)) = sections.iter().find(|(_, keys)| keys.contains(&name))
    {
        return format!("`{name}` is outside any section; did you mean `{name}` in [{section}]?");
    }
    match closest(name, SECTIONS.into_iter()) {
        Some(closest) => format!("unknown section `{name}`; did you mean `{closest}`?"),
        None => format!("unknown section `{name}` (known: {})", SECTIONS.join(", ")),
    }
}

/// The candidate nearest to `word` by edit distance (case aside), if near enough to be a slip:
/// at most one edit per three characters, between one and three. Else the only candidate that
/// `word` begins, if it has four characters or more (`endpoint` for `endpoint_url`).
fn closest<'a>(word: &str, candidates: impl Iterator<Item = &'a str> + Clone) -> Option<&'a str> {
    let word = word.to_lowercase();
    let limit = (word.chars().count() / 3).clamp(1, 3);
    let nearest = candidates
        .clone()
        .map(|candidate| (edit_distance(&word, candidate), candidate))
        .filter(|(distance, _)| *distance <= limit)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate);
    let mut begun = candidates.filter(|candidate| word.len() >= 4 && candidate.starts_with(&word));
    nearest.or_else(|| begun.next().filter(|_| begun.next().is_none()))
}

/// Insertions, deletions, substitutions and swaps of two neighbours that turn `a` into `b`
/// (optimal string alignment).
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut rows = vec![vec![0; b.len() + 1]; a.len() + 1];
    for (i, row) in rows.iter_mut().enumerate() {
        row[0] = i;
    }
    rows[0] = (0..=b.len()).collect();
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (rows[i - 1][j] + 1).min(rows[i][j - 1] + 1).min(rows[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(rows[i - 2][j - 2] + 1);
            }
            rows[i][j] = best;
        }
    }
    rows[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::IntakeConfig;
    use crate::config::load::field_names;

    #[test]
    fn the_closest_key_is_a_slip_away() {
        assert_eq!(edit_distance("visiblity_timeout", "visibility_timeout"), 1);
        assert_eq!(edit_distance("conucrrency", "concurrency"), 1, "a swap of neighbours is one edit");
        let keys = field_names::<IntakeConfig>();
        assert_eq!(keys.len(), 7);
        assert_eq!(closest("visiblity_timeout", keys.iter().copied()), Some("visibility_timeout"));
        assert_eq!(closest("Wait_Time", keys.iter().copied()), Some("wait_time"));
        assert_eq!(closest("timeout", keys.iter().copied()), None);
        assert_eq!(closest("queue", keys.iter().copied()), Some("queue_url"), "the only key it begins");
        assert_eq!(closest("backoff", keys.iter().copied()), None, "two keys begin with it");
    }
}
