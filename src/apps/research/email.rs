//! The e-mail that delivers the report: a real MIME message (lettre) with
//! the PDF attached, written to the outbox in the data directory as an
//! `.eml` file any mail program opens.

use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};

/// Who the reports come from.
pub const FROM: &str = "holdfast reports <reports@holdfast.invalid>";
/// Who they go to when nobody is named.
pub const DEFAULT_TO: &str = "you@example.com";

/// Checks an address (`Name <a@b.c>` or `a@b.c`).
pub fn parse_address(address: &str) -> Result<Mailbox, String> {
    address
        .parse::<Mailbox>()
        .map_err(|e| format!("{address:?} is not an e-mail address: {e}"))
}

/// The message, as the bytes of an `.eml` file.
pub fn compose(
    to: &str,
    subject: &str,
    body: &str,
    pdf_name: &str,
    pdf: Vec<u8>,
) -> Result<Vec<u8>, String> {
    let from = parse_address(FROM)?;
    let to = parse_address(to)?;
    let message = lettre::Message::builder()
        .from(from)
        .to(to)
        // A prompt may hold anything: no control character reaches a header.
        .subject(crate::text::one_line(subject))
        .multipart(
            MultiPart::mixed()
                .singlepart(SinglePart::plain(body.to_string()))
                .singlepart(Attachment::new(pdf_name.to_string()).body(pdf, pdf_type()?)),
        )
        .map_err(|e| format!("cannot build the message: {e}"))?;
    Ok(message.formatted())
}

fn pdf_type() -> Result<ContentType, String> {
    ContentType::parse("application/pdf").map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    /// A prompt's control characters never reach the message's headers: no
    /// header can be injected, the subject stays one line.
    #[test]
    fn a_hostile_subject_stays_one_header() {
        let eml = super::compose(
            "ada@example.com",
            "Report\r\nBcc: eve@example.com\x1b[2J",
            "body",
            "r.pdf",
            b"%PDF".to_vec(),
        )
        .unwrap();
        let text = String::from_utf8_lossy(&eml);
        let headers = text.split("\r\n\r\n").next().unwrap();
        assert!(!headers.contains("\nBcc:"), "{headers}");
        assert!(!headers.contains('\x1b'), "{headers}");
        assert!(
            headers.contains("Subject: Report Bcc: eve@example.com"),
            "{headers}"
        );
    }
}
