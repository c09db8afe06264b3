//! Small text helpers shared by the stages.

/// At most `max_chars` characters of `text`, with `…` when something was cut.
pub(crate) fn shorten(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::shorten;

    #[test]
    fn cuts_on_characters_and_marks_the_cut() {
        assert_eq!(shorten("héllo", 3), "hél…");
        assert_eq!(shorten("hi", 3), "hi");
    }
}
