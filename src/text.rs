//! Text from outside — a model's answer, a prompt, a failure message, a
//! workflow id — is data, never terminal commands or mail headers: strip
//! escape sequences and control characters before it is printed, drawn or
//! put in a header.

/// `s` without escape sequences (colours, cursor moves, title changes) and
/// without control characters other than newlines.
pub fn printable(s: &str) -> String {
    let stripped = strip_ansi_escapes::strip_str(s);
    stripped
        .chars()
        .filter(|c| !c.is_control() || matches!(c, '\n' | '\t'))
        .collect()
}

/// [`printable`] on one line: newlines and tabs become spaces (for a mail
/// header, a list row, a status line).
pub fn one_line(s: &str) -> String {
    printable(s)
        .chars()
        .map(|c| if c.is_whitespace() { ' ' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A model's answer cannot drive the terminal: colour, clear-screen,
    /// title (OSC) and bare control characters are gone, the words stay.
    #[test]
    fn escape_sequences_and_controls_are_stripped() {
        let hostile = "ok \x1b[31mred\x1b[0m \x1b[2J\x1b]0;pwned\x07done\x08\r\nnext line";
        assert_eq!(printable(hostile), "ok red done\nnext line");
        assert_eq!(one_line("Report:\r\nBcc: evil@x"), "Report: Bcc: evil@x");
    }
}
