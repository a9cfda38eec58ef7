//! Text from clients, made safe to show on a terminal or in a plain-text file an operator
//! reads: the audit listing, the demo's printed messages.

/// Text (a field of the plain audit output, a demo message) as it can be shown on a terminal
/// without forging anything: a newline cannot start a fake record, an escape sequence cannot repaint the
/// screen, a bidirectional override cannot reorder what follows, and an invisible or
/// look-alike space cannot make `u:\u{FEFF}alice` pass for `u:alice`. Such characters (C0,
/// DEL, C1, Unicode direction marks and overrides, zero-width and other invisible characters,
/// line and paragraph separators, spaces other than the ASCII one) are written as `\n`, `\r`,
/// `\t` or `\u{XX}`, and a backslash as `\\`, so every escape reads back to one character.
pub fn visible(text: &str) -> std::borrow::Cow<'_, str> {
    let hidden = |c: char| {
        c == '\\'
            || c.is_control()
            || (c.is_whitespace() && c != ' ')
            || matches!(c,
                '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{17B4}'
                | '\u{17B5}' | '\u{180B}'..='\u{180F}' | '\u{200B}'..='\u{200F}'
                | '\u{2028}'..='\u{202E}' | '\u{2060}'..='\u{206F}' | '\u{3164}'
                | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}' | '\u{FFA0}' | '\u{FFF9}'..='\u{FFFB}'
                | '\u{E0000}'..='\u{E007F}')
    };
    if !text.chars().any(hidden) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if hidden(c) => {
                use std::fmt::Write;
                let _ = write!(out, "\\u{{{:X}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Multi-line text with each line made [`visible`] and its line breaks kept.
pub fn visible_lines(text: &str) -> String {
    text.split('\n')
        .map(|line| visible(line).into_owned())
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::{visible, visible_lines};

    #[test]
    fn control_characters_are_shown_escaped_and_unambiguous() {
        assert_eq!(visible("u:alice"), "u:alice");
        assert_eq!(
            visible("a\nb\u{1b}[2J\u{7f}\u{9b}\u{202e}\\n"),
            "a\\nb\\u{1B}[2J\\u{7F}\\u{9B}\\u{202E}\\\\n"
        );
        assert_eq!(visible("caf\u{e9}"), "caf\u{e9}");
        assert_eq!(
            visible("u:\u{feff}al\u{ad}i\u{200b}ce\u{2028}\u{a0}"),
            "u:\\u{FEFF}al\\u{AD}i\\u{200B}ce\\u{2028}\\u{A0}"
        );
    }

    #[test]
    fn lines_keep_their_breaks_and_lose_everything_else() {
        assert_eq!(
            visible_lines("Your code\n123456\u{1b}[2J\r\nbye"),
            "Your code\n123456\\u{1B}[2J\\r\nbye"
        );
    }
}
