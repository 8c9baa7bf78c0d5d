//! Redaction: a plugin's secret values replaced by `***` in everything it
//! emits (results, error messages, hook answers, log lines), in every form
//! the text can carry them:
//!
//! - as written;
//! - JSON-escaped (`"` as `\"`, `\` as `\\`, control characters), also the
//!   way other encoders escape (`\/`, `\u003c` for `<`, `>` and `&`,
//!   `\uXXXX` for every non-ASCII character), and escaped twice (a JSON
//!   document inside a JSON string);
//! - percent-encoded (a URL with the key in its query);
//! - and, in a JSON document, any escaping at all: each string of the
//!   document is decoded, redacted and encoded again, so the document stays
//!   valid JSON.
//!
//! Text that is cut (a long log line) is redacted before the cut, and a cut
//! never falls inside a secret, so no piece of one is let through either.
//!
//! This catches a careless plugin, not a hostile one: a plugin that means to
//! pass its key on can always encode it some other way (base64, reversed).

use serde::de::IgnoredAny;

/// What replaces a secret.
const MASK: &str = "***";

/// The forms of some secret values to look for, longest first.
#[derive(Default)]
pub(crate) struct Redactor {
    forms: Vec<String>,
}

impl Redactor {
    /// Looks for every form of each of `secrets`.
    pub fn new<'a>(secrets: impl IntoIterator<Item = &'a str>) -> Self {
        let mut forms: Vec<String> = secrets.into_iter().flat_map(forms_of).collect();
        forms.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        forms.dedup();
        Self { forms }
    }

    /// The longest form, in bytes: how far past a cut a secret that starts
    /// before it can reach.
    pub fn span(&self) -> usize {
        self.forms.first().map_or(0, String::len)
    }

    /// `text` with every form of every secret replaced by `***`. A JSON
    /// document is redacted string by string, and stays valid JSON.
    pub fn redact(&self, text: String) -> String {
        if self.forms.is_empty() || (!text.contains('\\') && !self.found_in(&text)) {
            return text;
        }
        let text = self.redact_json(&text).unwrap_or(text);
        // What a JSON pass leaves (a secret spanning several tokens, or text
        // that is not JSON at all) is replaced as text.
        if self.found_in(&text) { self.replace(&text) } else { text }
    }

    /// `text` redacted and cut to at most `limit` bytes (plus `…` when cut).
    /// The cut is chosen before redacting, and never inside a secret; only
    /// [`Self::span`] bytes past it are looked at.
    pub fn redact_cut(&self, text: &str, limit: usize) -> String {
        if text.len() <= limit {
            return self.redact(text.to_owned());
        }
        let mut cut = text.floor_char_boundary(limit);
        if !self.forms.is_empty() {
            let window = &text[..text.ceil_char_boundary(cut + self.span())];
            let found: Vec<(usize, usize)> = self.forms.iter().flat_map(|form| occurrences(window, form)).collect();
            // Move the cut before every secret it would fall inside.
            while let Some(start) = found.iter().filter(|&&(s, e)| s < cut && cut < e).map(|&(s, _)| s).min() {
                cut = start;
            }
        }
        let mut kept = self.redact(text[..cut].to_owned());
        kept.push('…');
        kept
    }

    fn found_in(&self, text: &str) -> bool {
        self.forms.iter().any(|form| text.contains(form.as_str()))
    }

    fn replace(&self, text: &str) -> String {
        let mut text = text.to_owned();
        for form in &self.forms {
            if text.contains(form.as_str()) {
                text = text.replace(form.as_str(), MASK);
            }
        }
        text
    }

    /// Redacts a JSON document token by token: each string decoded,
    /// redacted and encoded again when it held a secret; a number that spells
    /// one becomes the string `"***"`. `None` when `text` is not JSON.
    fn redact_json(&self, text: &str) -> Option<String> {
        serde_json::from_str::<IgnoredAny>(text).ok()?;
        let bytes = text.as_bytes();
        let mut out = String::with_capacity(text.len());
        let (mut i, mut copied) = (0, 0);
        while i < bytes.len() {
            match bytes[i] {
                b'"' => {
                    let start = i;
                    i += 1;
                    while bytes[i] != b'"' {
                        i += if bytes[i] == b'\\' { 2 } else { 1 };
                    }
                    i += 1;
                    let decoded: String = serde_json::from_str(&text[start..i]).ok()?;
                    if self.found_in(&decoded) {
                        out.push_str(&text[copied..start]);
                        out.push_str(&serde_json::to_string(&self.replace(&decoded)).expect("strings serialize"));
                        copied = i;
                    }
                }
                b'-' | b'0'..=b'9' => {
                    let start = i;
                    while i < bytes.len() && matches!(bytes[i], b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E') {
                        i += 1;
                    }
                    if self.found_in(&text[start..i]) {
                        out.push_str(&text[copied..start]);
                        out.push_str("\"***\"");
                        copied = i;
                    }
                }
                _ => i += 1,
            }
        }
        out.push_str(&text[copied..]);
        Some(out)
    }
}

/// Every way `secret` may be written in text a plugin emits.
fn forms_of(secret: &str) -> Vec<String> {
    let mut forms = vec![secret.to_owned()];
    for html in [false, true] {
        for ascii in [false, true] {
            for slash in [false, true] {
                forms.push(json_escape(secret, Escape { html, ascii, slash }));
            }
        }
    }
    let once = json_escape(secret, Escape::default());
    forms.push(json_escape(&once, Escape::default()));
    forms.push(percent_encode(secret, "0123456789ABCDEF"));
    forms.push(percent_encode(secret, "0123456789abcdef"));
    forms
}

/// Which characters a JSON encoder escapes beyond what JSON requires.
#[derive(Default, Clone, Copy)]
struct Escape {
    /// `<`, `>` and `&` as `\u003c`, `\u003e`, `\u0026` (Go).
    html: bool,
    /// Every non-ASCII character as `\uXXXX` (Python's default).
    ascii: bool,
    /// `/` as `\/` (PHP).
    slash: bool,
}

fn json_escape(text: &str, escape: Escape) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if c < ' ' || (escape.html && matches!(c, '<' | '>' | '&')) || (escape.ascii && !c.is_ascii()) => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
            '/' if escape.slash => out.push_str("\\/"),
            c => out.push(c),
        }
    }
    out
}

fn percent_encode(text: &str, digits: &str) -> String {
    let digits = digits.as_bytes();
    let mut out = String::with_capacity(text.len() * 3);
    for &b in text.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.extend(['%', digits[usize::from(b >> 4)] as char, digits[usize::from(b & 15)] as char]);
        }
    }
    out
}

/// Every occurrence of `form` in `text`, overlapping ones included, as byte ranges.
fn occurrences<'a>(text: &'a str, form: &'a str) -> impl Iterator<Item = (usize, usize)> + 'a {
    let mut from = 0;
    std::iter::from_fn(move || {
        let start = from + text.get(from..)?.find(form)?;
        from = start + text[start..].chars().next().map_or(1, char::len_utf8);
        Some((start, start + form.len()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = r#"sk_live_4f"9Q\z</Kp2é"#;

    fn redactor() -> Redactor {
        Redactor::new([SECRET])
    }

    /// No 8-character piece of the secret, as written or JSON-escaped.
    fn assert_clean(text: &str) {
        let chars: Vec<char> = SECRET.chars().collect();
        for piece in chars.windows(8).map(|w| w.iter().collect::<String>()) {
            let escaped = json_escape(&piece, Escape::default());
            assert!(!text.contains(&piece) && !text.contains(&escaped), "{piece:?} is in {text:?}");
        }
    }

    #[test]
    fn every_escaping_in_a_json_document_is_caught_and_the_document_stays_valid() {
        let r = redactor();
        let inner = serde_json::json!({ "v": SECRET }).to_string();
        let cases = [
            serde_json::json!({ "key": SECRET, "double": inner, "list": [SECRET] }).to_string(),
            // Go's and Python's encoders, and a \u escape for every character.
            format!(r#"{{"go": "{}"}}"#, json_escape(SECRET, Escape { html: true, ..Escape::default() })),
            format!(r#"{{"py": "{}"}}"#, json_escape(SECRET, Escape { ascii: true, ..Escape::default() })),
            format!(r#"{{"all": "{}"}}"#, SECRET.encode_utf16().map(|u| format!("\\u{u:04X}")).collect::<String>()),
            format!(r#"{{"{}": 1}}"#, json_escape(SECRET, Escape::default())),
        ];
        for text in cases {
            let redacted = r.redact(text.clone());
            assert_clean(&redacted);
            let value: serde_json::Value =
                serde_json::from_str(&redacted).unwrap_or_else(|e| panic!("{redacted}: {e}"));
            assert!(redacted.contains("***"), "{text} -> {value}");
        }
        let plain = r#"{"a": "no secret here \" \\ "}"#.to_owned();
        assert_eq!(r.redact(plain.clone()), plain, "untouched, byte for byte");
    }

    #[test]
    fn text_is_redacted_in_every_form() {
        let r = redactor();
        for text in [
            format!("key={SECRET}!"),
            format!("body {} end", serde_json::to_string(SECRET).unwrap()),
            format!("url ?key={}&x=1", percent_encode(SECRET, "0123456789ABCDEF")),
            format!("php {}", json_escape(SECRET, Escape { slash: true, ..Escape::default() })),
        ] {
            let redacted = r.redact(text.clone());
            assert_clean(&redacted);
            assert!(redacted.contains("***"), "{text} -> {redacted}");
        }
        let numeric = Redactor::new(["12345678"]);
        assert_eq!(numeric.redact(r#"{"pin": 12345678}"#.into()), r#"{"pin": "***"}"#);
    }

    #[test]
    fn a_cut_is_made_before_redacting_and_never_inside_a_secret() {
        let r = redactor();
        for pad in 0..SECRET.len() + 4 {
            for form in [SECRET.to_owned(), json_escape(SECRET, Escape::default())] {
                let text = format!("{}{form}{}", "x".repeat(100 - pad.min(100)), "y".repeat(50));
                let cut = r.redact_cut(&text, 100);
                assert_clean(&cut);
                assert!(cut.ends_with('…') && cut.len() <= 100 + '…'.len_utf8(), "{cut}");
            }
        }
        assert_eq!(Redactor::default().redact_cut("héllo", 2), "h…");
        assert_eq!(Redactor::default().redact_cut("hello", 5), "hello");
    }
}
