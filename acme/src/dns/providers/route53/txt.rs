//! TXT record data in presentation format (RFC 1035 §5.1): how a value
//! is written into a record set and read back out of one.

/// A TXT value as presentation-format character-strings: quoted, `"` and
/// `\` escaped, split every 255 bytes (RFC 1035 §3.3.14).
pub(crate) fn txt_quote(value: &str) -> String {
    let bytes = value.as_bytes();
    bytes
        .chunks(255)
        .map(|chunk| {
            let mut out = String::from("\"");
            for &b in chunk {
                match b {
                    b'"' | b'\\' => {
                        out.push('\\');
                        out.push(char::from(b));
                    }
                    0x20..=0x7e => out.push(char::from(b)),
                    _ => out.push_str(&format!("\\{b:03}")),
                }
            }
            out.push('"');
            out
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The text a presentation-format TXT value carries: its character-strings
/// unquoted, unescaped and joined.
pub(crate) fn txt_text(rdata: &str) -> String {
    let mut out = Vec::new();
    let mut bytes = rdata.trim().bytes().peekable();
    let mut quoted = false;
    while let Some(b) = bytes.next() {
        match b {
            b'"' => quoted = !quoted,
            b'\\' => {
                let mut digits = Vec::new();
                while digits.len() < 3 && bytes.peek().is_some_and(u8::is_ascii_digit) {
                    digits.extend(bytes.next());
                }
                if digits.len() == 3 {
                    let code = digits
                        .iter()
                        .fold(0u32, |n, d| n * 10 + u32::from(d - b'0'));
                    out.push(u8::try_from(code).unwrap_or(b'?'));
                } else if digits.is_empty() {
                    out.extend(bytes.next());
                } else {
                    out.extend(digits);
                }
            }
            b if b.is_ascii_whitespace() && !quoted => {}
            b => out.push(b),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_and_reads_back() {
        assert_eq!(txt_quote("abc"), "\"abc\"");
        assert_eq!(txt_quote("a\"b\\c"), r#""a\"b\\c""#);
        let long = "x".repeat(300);
        let quoted = txt_quote(&long);
        assert_eq!(
            quoted,
            format!("\"{}\" \"{}\"", "x".repeat(255), "x".repeat(45))
        );
        for value in ["abc", "a\"b\\c", long.as_str(), "sp ace", "\u{7f}"] {
            assert_eq!(txt_text(&txt_quote(value)), value);
        }
        assert_eq!(txt_text("\"a\" \"b\""), "ab");
        assert_eq!(txt_text("bare"), "bare");
        assert_eq!(txt_text("\"\\065\\x\""), "Ax");
    }
}
