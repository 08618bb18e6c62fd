//! Just enough XML for the Route 53 REST API: a reader that turns a
//! response document into a tree of elements, and text escaping for the
//! request documents we write.
//!
//! Route 53 answers with small, namespaced, attribute-free documents
//! (`ListHostedZonesResponse`, `ListResourceRecordSetsResponse`,
//! `ErrorResponse`...). The reader keeps element names (namespace prefix
//! dropped) and text, and skips the prolog, comments, processing
//! instructions and attributes. It decodes the five predefined entities
//! and character references (XML 1.0 §4.1, §4.6) and CDATA sections.

/// One element: its local name, its text (concatenated, entities
/// decoded) and its child elements in document order.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Element {
    /// The local name (`ns:Name` → `Name`).
    pub(crate) name: String,
    /// The element's own text, not its children's.
    pub(crate) text: String,
    /// Child elements.
    pub(crate) children: Vec<Element>,
}

impl Element {
    /// The first child called `name`.
    pub(crate) fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    /// Every child called `name`.
    pub(crate) fn children<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// The element reached by following `path` from here.
    pub(crate) fn at(&self, path: &[&str]) -> Option<&Element> {
        path.iter().try_fold(self, |el, name| el.child(name))
    }

    /// The trimmed text of the element at `path`.
    pub(crate) fn text_at(&self, path: &[&str]) -> Option<&str> {
        self.at(path).map(|el| el.text.trim())
    }
}

/// Parses a whole document and returns its root element.
pub(crate) fn parse(input: &str) -> Result<Element, String> {
    let mut rest = input;
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix("<?") {
            rest = skip_past(after, "?>")?;
        } else if let Some(after) = rest.strip_prefix("<!--") {
            rest = skip_past(after, "-->")?;
        } else if let Some(after) = rest.strip_prefix("<![CDATA[") {
            let end = after.find("]]>").ok_or("unterminated CDATA section")?;
            let top = stack.last_mut().ok_or("CDATA outside the root element")?;
            top.text.push_str(&after[..end]);
            rest = &after[end + 3..];
        } else if let Some(after) = rest.strip_prefix("<!") {
            // A DOCTYPE without an internal subset; Route 53 sends none.
            rest = skip_past(after, ">")?;
        } else if let Some(after) = rest.strip_prefix("</") {
            let end = after.find('>').ok_or("unterminated end tag")?;
            let name = local(after[..end].trim());
            let element = stack
                .pop()
                .ok_or_else(|| format!("</{name}> closes nothing"))?;
            if element.name != name {
                return Err(format!("</{name}> closes <{}>", element.name));
            }
            attach(&mut stack, &mut root, element)?;
            rest = &after[end + 1..];
        } else if let Some(after) = rest.strip_prefix('<') {
            let (tag, self_closing, next) = start_tag(after)?;
            let element = Element {
                name: local(tag).to_owned(),
                ..Element::default()
            };
            if self_closing {
                attach(&mut stack, &mut root, element)?;
            } else {
                stack.push(element);
            }
            rest = next;
        } else {
            let end = rest.find('<').unwrap_or(rest.len());
            let text = &rest[..end];
            match stack.last_mut() {
                Some(top) => top.text.push_str(&unescape(text)?),
                None if text.trim().is_empty() => {}
                None => return Err("text outside the root element".into()),
            }
            rest = &rest[end..];
        }
    }
    if let Some(open) = stack.last() {
        return Err(format!("<{}> is never closed", open.name));
    }
    root.ok_or_else(|| "no root element".into())
}

/// Escapes text for an element's content.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

fn skip_past<'a>(input: &'a str, end: &str) -> Result<&'a str, String> {
    input
        .find(end)
        .map(|at| &input[at + end.len()..])
        .ok_or_else(|| format!("missing \"{end}\""))
}

fn local(name: &str) -> &str {
    name.rsplit(':').next().unwrap_or(name)
}

fn attach(
    stack: &mut [Element],
    root: &mut Option<Element>,
    element: Element,
) -> Result<(), String> {
    match stack.last_mut() {
        Some(parent) => parent.children.push(element),
        None if root.is_none() => *root = Some(element),
        None => return Err("more than one root element".into()),
    }
    Ok(())
}

/// Reads a start tag after its `<`: the name, whether it closes itself,
/// and what follows its `>`. Attribute values may hold `>`.
fn start_tag(input: &str) -> Result<(&str, bool, &str), String> {
    let name_end = input
        .find(|c: char| c.is_whitespace() || c == '/' || c == '>')
        .ok_or("unterminated start tag")?;
    let name = &input[..name_end];
    if name.is_empty() {
        return Err("empty tag name".into());
    }
    let mut quote: Option<char> = None;
    for (at, c) in input[name_end..].char_indices() {
        let at = name_end + at;
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '>') => {
                let self_closing = input[..at].ends_with('/');
                return Ok((name, self_closing, &input[at + 1..]));
            }
            (None, _) => {}
        }
    }
    Err(format!("<{name}> is not terminated"))
}

fn unescape(text: &str) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let end = after.find(';').ok_or("unterminated entity reference")?;
        let entity = &after[..end];
        let c = match entity {
            "amp" => '&',
            "lt" => '<',
            "gt" => '>',
            "quot" => '"',
            "apos" => '\'',
            _ => {
                let code = if let Some(hex) = entity.strip_prefix("#x") {
                    u32::from_str_radix(hex, 16).ok()
                } else if let Some(dec) = entity.strip_prefix('#') {
                    dec.parse().ok()
                } else {
                    None
                };
                code.and_then(char::from_u32)
                    .ok_or_else(|| format!("unknown entity &{entity};"))?
            }
        };
        out.push(c);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The error document shape from the Route 53 API reference, "REST
    /// Responses → Error Responses".
    #[test]
    fn reads_an_error_response() {
        let doc = r#"<?xml version="1.0" encoding="UTF-8"?>
<ErrorResponse xmlns="https://route53.amazonaws.com/doc/2013-04-01/">
   <Error>
      <Type>Sender</Type>
      <Code>InvalidChangeBatch</Code>
      <Message>Tried to create resource record set &quot;x&quot; &amp; it exists &#x2014; &lt;ok&gt;</Message>
   </Error>
   <RequestId>b25f48e8-84fd-11e6-80d9-574e0c4664cb</RequestId>
</ErrorResponse>"#;
        let root = parse(doc).unwrap();
        assert_eq!(root.name, "ErrorResponse");
        assert_eq!(root.text_at(&["Error", "Code"]), Some("InvalidChangeBatch"));
        assert_eq!(
            root.text_at(&["Error", "Message"]),
            Some("Tried to create resource record set \"x\" & it exists \u{2014} <ok>")
        );
    }

    #[test]
    fn reads_lists_empty_elements_comments_and_cdata() {
        let doc = "<a:R xmlns:a='u'><!-- c --><L><V>1</V><V/><V><![CDATA[<3>]]></V></L><M attr=\"x>y\">t</M></a:R>";
        let root = parse(doc).unwrap();
        let values: Vec<&str> = root
            .child("L")
            .unwrap()
            .children("V")
            .map(|v| v.text.as_str())
            .collect();
        assert_eq!(values, ["1", "", "<3>"]);
        assert_eq!(root.text_at(&["M"]), Some("t"));
    }

    #[test]
    fn refuses_broken_documents() {
        for doc in [
            "",
            "<a>",
            "<a></b>",
            "<a/><b/>",
            "text",
            "<a>&bogus;</a>",
            "<a x='>",
        ] {
            assert!(parse(doc).is_err(), "{doc:?} parsed");
        }
    }

    #[test]
    fn escapes_what_it_must() {
        assert_eq!(
            escape(r#""a" & <b>'"#),
            "&quot;a&quot; &amp; &lt;b&gt;&apos;"
        );
        assert_eq!(
            parse(&format!("<v>{}</v>", escape("\"x\" <&>")))
                .unwrap()
                .text,
            "\"x\" <&>"
        );
    }
}
