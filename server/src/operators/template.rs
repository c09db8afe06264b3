//! Operator templates: `'{title} is a classic'` names columns in braces, as in the
//! TAG paper. `{{` and `}}` stand for literal braces. The SQL front end resolves
//! the names to columns; the operators use the same parser to label the values.

/// Distinct placeholder names in order of first appearance.
pub fn placeholders(template: &str) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    let mut chars = template.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            '{' if matches!(chars.peek(), Some((_, '{'))) => {
                chars.next();
            }
            '{' => {
                let rest = &template[i + 1..];
                let Some(end) = rest.find('}') else { break };
                let name = rest[..end].trim();
                if is_column_reference(name) && !names.iter().any(|n| n == name) {
                    names.push(name.to_string());
                }
                // Skip past the closing brace.
                while let Some((j, _)) = chars.peek() {
                    if *j > i + end + 1 {
                        break;
                    }
                    chars.next();
                }
            }
            _ => {}
        }
    }
    names
}

/// `title`, `m.title` or `"Box Office"`-free names: letters, digits, `_`, `.`, spaces.
fn is_column_reference(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && !name.ends_with('.')
        && name.chars().all(|c| c.is_alphanumeric() || c == '_' || c == '.' || c == ' ')
        && !name.chars().next().is_some_and(|c| c.is_ascii_digit())
}

/// The instruction as the model sees it: placeholders stay as references to the
/// labelled fields that follow (`{title}` becomes `[title]`), and escaped braces
/// become plain braces. Data is never spliced into the instruction.
pub fn instruction_text(template: &str) -> String {
    let names = placeholders(template);
    let mut text = template.replace("{{", "\u{0}").replace("}}", "\u{1}");
    for name in &names {
        text = text.replace(&format!("{{{name}}}"), &format!("[{name}]"));
    }
    text.replace('\u{0}', "{").replace('\u{1}', "}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_distinct_names_in_order() {
        assert_eq!(placeholders("{title} ({year}) is like {title}"), vec!["title", "year"]);
        assert_eq!(placeholders("Did {support_response} address {request}?"), vec!["support_response", "request"]);
        assert_eq!(placeholders("{m.title}"), vec!["m.title"]);
        assert!(placeholders("no fields here").is_empty());
    }

    #[test]
    fn escaped_and_malformed_braces_are_not_names() {
        assert!(placeholders("json like {{\"a\": 1}}").is_empty());
        assert!(placeholders("{1abc} {} {a-b}").is_empty());
        assert!(placeholders("unclosed {title").is_empty());
    }

    #[test]
    fn instruction_refers_to_fields_by_name() {
        assert_eq!(instruction_text("{title} is a classic {{really}}"), "[title] is a classic {really}");
    }
}
