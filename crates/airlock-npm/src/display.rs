//! Showing untrusted strings inside error messages.
//!
//! Error messages reach npm users' terminals through `{"error": ...}`, so anything the client sent
//! is escaped before it is put between backticks: control and invisible formatting characters
//! cannot move the cursor or reorder text, a backtick cannot close the quote early, and a huge
//! value cannot flood the output.

/// How many characters of an untrusted value an error message shows. Long enough for any valid
/// name (214), version (256) or tag, so only values that are already wrong get cut.
const MAX_SHOWN_CHARS: usize = 256;

/// `s` made safe to show between backticks in an error message.
pub(crate) fn shown(s: &str) -> String {
    let mut out = String::with_capacity(s.len().min(MAX_SHOWN_CHARS * 4));
    for (index, c) in s.chars().enumerate() {
        if index == MAX_SHOWN_CHARS {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else if is_invisible_or_quote(c) {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    out
}

/// Characters that are not control characters but still change how text displays (zero-width
/// and bidirectional formatting characters), plus the backtick we quote with.
fn is_invisible_or_quote(c: char) -> bool {
    matches!(
        c,
        '`' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{FEFF}'
    )
}

#[cfg(test)]
mod tests {
    use super::shown;

    #[test]
    fn plain_text_is_unchanged() {
        assert_eq!(shown("@scope/lib"), "@scope/lib");
        assert_eq!(shown("ünï code"), "ünï code");
    }

    #[test]
    fn control_and_invisible_characters_are_escaped() {
        assert_eq!(shown("a\nb\u{1b}[31m"), "a\\nb\\u{1b}[31m");
        assert_eq!(shown("a`b\u{202E}c"), "a\\u{60}b\\u{202e}c");
    }

    #[test]
    fn long_values_are_cut() {
        let long = "a".repeat(1000);
        let out = shown(&long);
        assert_eq!(out.chars().count(), 257);
        assert!(out.ends_with('…'));
    }
}
