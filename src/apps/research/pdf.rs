//! The report as a real PDF (printpdf): a title, the prompt, which model
//! wrote it, and the research text wrapped into paragraphs across as many
//! A4 pages as it needs. Body text is Courier, whose glyphs are all 0.6 em
//! wide, so wrapping by characters is exact.

use printpdf::{
    BuiltinFont, Mm, Op, PdfDocument, PdfFontHandle, PdfPage, PdfSaveOptions, Point, Pt, TextItem,
};

const PAGE_W: f32 = 210.0;
const PAGE_H: f32 = 297.0;
const MARGIN: f32 = 20.0;
const BODY_PT: f32 = 10.0;
const LEADING_PT: f32 = 13.0;
/// Courier at 10 pt is 6 pt a character; 170 mm is 481.9 pt.
pub const COLUMNS: usize = 80;

/// The report's content.
#[derive(Clone, Debug)]
pub struct Report<'a> {
    pub title: &'a str,
    pub prompt: &'a str,
    pub model: &'a str,
    pub text: &'a str,
}

#[derive(Clone, Copy)]
enum Style {
    Title,
    Heading,
    Body,
    Small,
}

impl Style {
    fn font(self) -> (BuiltinFont, f32, f32) {
        match self {
            Style::Title => (BuiltinFont::HelveticaBold, 20.0, 28.0),
            Style::Heading => (BuiltinFont::HelveticaBold, 11.0, 16.0),
            Style::Body => (BuiltinFont::Courier, BODY_PT, LEADING_PT),
            Style::Small => (BuiltinFont::HelveticaOblique, 9.0, 13.0),
        }
    }
}

fn wrap(text: &str) -> Vec<String> {
    let opts = textwrap::Options::new(COLUMNS)
        .word_splitter(textwrap::WordSplitter::NoHyphenation)
        .break_words(true);
    textwrap::wrap(text, opts)
        .into_iter()
        .map(|l| l.into_owned())
        .collect()
}

/// Lines of the whole report, each with its style; `None` is a blank line.
fn lines(r: &Report) -> Vec<Option<(Style, String)>> {
    let mut out = vec![Some((Style::Title, r.title.to_string()))];
    out.push(Some((Style::Heading, "Prompt".into())));
    for l in wrap(r.prompt.trim()) {
        out.push(Some((Style::Body, l)));
    }
    out.push(None);
    out.push(Some((Style::Small, format!("Written by {}", r.model))));
    out.push(None);
    out.push(Some((Style::Heading, "Research".into())));
    for (i, paragraph) in r
        .text
        .split("\n\n")
        .map(|p| p.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|p| !p.is_empty())
        .enumerate()
    {
        if i > 0 {
            out.push(None);
        }
        out.extend(wrap(&paragraph).into_iter().map(|l| Some((Style::Body, l))));
    }
    out
}

/// Renders the report; returns the PDF's bytes and its page count.
pub fn render(r: &Report) -> (Vec<u8>, usize) {
    let top = Pt::from(Mm(PAGE_H - MARGIN)).0;
    let bottom = Pt::from(Mm(MARGIN + 8.0)).0;
    let mut pages: Vec<Vec<Op>> = Vec::new();
    let mut ops: Vec<Op> = Vec::new();
    let mut y = top;
    let begin_page = |ops: &mut Vec<Op>| {
        ops.push(Op::StartTextSection);
        ops.push(Op::SetTextCursor {
            pos: Point::new(Mm(MARGIN), Mm(PAGE_H - MARGIN)),
        });
    };
    begin_page(&mut ops);
    for line in lines(r) {
        let (style, text) = match line {
            Some((s, t)) => (s, t),
            None => (Style::Body, String::new()),
        };
        let (font, size, leading) = style.font();
        if y - leading < bottom {
            ops.push(Op::EndTextSection);
            pages.push(std::mem::take(&mut ops));
            begin_page(&mut ops);
            y = top;
        }
        ops.push(Op::SetFont {
            font: PdfFontHandle::Builtin(font),
            size: Pt(size),
        });
        ops.push(Op::SetLineHeight { lh: Pt(leading) });
        if !text.is_empty() {
            ops.push(Op::ShowText {
                items: vec![TextItem::Text(text)],
            });
        }
        ops.push(Op::AddLineBreak);
        y -= leading;
    }
    ops.push(Op::EndTextSection);
    pages.push(ops);
    let count = pages.len();
    let pdf_pages = pages
        .into_iter()
        .enumerate()
        .map(|(i, mut ops)| {
            ops.extend([
                Op::StartTextSection,
                Op::SetTextCursor {
                    pos: Point::new(Mm(MARGIN), Mm(MARGIN - 6.0)),
                },
                Op::SetFont {
                    font: PdfFontHandle::Builtin(BuiltinFont::Helvetica),
                    size: Pt(8.0),
                },
                Op::ShowText {
                    items: vec![TextItem::Text(format!(
                        "{} - page {} of {count}",
                        r.title,
                        i + 1
                    ))],
                },
                Op::EndTextSection,
            ]);
            PdfPage::new(Mm(PAGE_W), Mm(PAGE_H), ops)
        })
        .collect();
    let mut doc = PdfDocument::new(r.title);
    let mut warnings = Vec::new();
    let bytes = doc
        .with_pages(pdf_pages)
        .save(&PdfSaveOptions::default(), &mut warnings);
    for w in warnings {
        tracing::debug!("pdf: {w:?}");
    }
    (bytes, count)
}
