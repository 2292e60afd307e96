//! Printing untrusted text (tool names, error texts, output summaries) to a
//! terminal: a newline cannot start a forged row and no escape sequence
//! reaches the terminal.

/// `text` with every control character (C0, DEL, C1) and every Unicode
/// bidirectional control shown as an escape (`\n`, `\r`, `\t`, `\u{1b}`).
pub fn terminal_safe(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() || is_bidi_control(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// Characters that reorder how a line is displayed (Trojan Source).
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_are_escaped() {
        assert_eq!(terminal_safe("plain é 😀"), "plain é 😀");
        assert_eq!(terminal_safe("a\nb\r\tc"), "a\\nb\\r\\tc");
        assert_eq!(terminal_safe("\u{1b}[31mred\u{1b}[0m"), "\\u{1b}[31mred\\u{1b}[0m");
        assert_eq!(terminal_safe("\u{9b}2J \u{7f} \u{202e}"), "\\u{9b}2J \\u{7f} \\u{202e}");
        assert_eq!(terminal_safe("a\\nb"), "a\\\\nb", "a literal backslash-n cannot pass for an escaped newline");
        assert!(!terminal_safe(&(0u8..=0x7f).map(char::from).collect::<String>()).chars().any(|c| c.is_control()));
    }
}
