//! Where the parts of a parsed head lie in its bytes.
//!
//! httparse hands out slices of the buffer it parsed. A head is then split
//! off that buffer and frozen, so its parts are kept as byte offsets and read
//! back from the frozen head, sharing its bytes instead of copying them.

use bytes::Bytes;

/// A part of a head, by byte offsets.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Span(usize, usize);

impl Span {
    /// Where `part`, a slice of `whole`, lies in it.
    pub(crate) fn within(whole: &[u8], part: &[u8]) -> Self {
        let start = part.as_ptr() as usize - whole.as_ptr() as usize;
        Self(start, start + part.len())
    }

    pub(crate) fn of(self, bytes: &[u8]) -> &[u8] {
        &bytes[self.0..self.1]
    }

    pub(crate) fn slice(self, bytes: &Bytes) -> Bytes {
        bytes.slice(self.0..self.1)
    }
}

/// Where one header field's name and value lie in a head.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Field {
    pub name: Span,
    pub value: Span,
}

impl Field {
    /// The field httparse found, a slice of `whole`.
    pub(crate) fn within(whole: &[u8], header: &httparse::Header<'_>) -> Self {
        Self {
            name: Span::within(whole, header.name.as_bytes()),
            value: Span::within(whole, header.value),
        }
    }
}
