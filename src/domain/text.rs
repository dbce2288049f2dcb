//! Text the gateway quotes back to a client.

/// A value quoted in a message: at most a few dozen characters, cut with `…`, so a hostile
/// megabyte-long value is never echoed back whole.
pub fn excerpt(text: &str) -> String {
    const MAX_CHARS: usize = 40;
    let mut chars = text.chars();
    let mut shown: String = chars.by_ref().take(MAX_CHARS).collect();
    if chars.next().is_some() {
        shown.push('…');
    }
    shown
}

#[cfg(test)]
mod tests {
    use super::excerpt;

    #[test]
    fn long_values_are_cut_and_short_ones_kept() {
        assert_eq!(excerpt("case 123"), "case 123");
        let long = "x".repeat(10_000_000);
        let shown = excerpt(&long);
        assert_eq!(shown.chars().count(), 41);
        assert!(shown.ends_with('…'));
        assert_eq!(excerpt(&"é".repeat(41)).chars().count(), 41);
    }
}
