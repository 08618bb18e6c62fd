//! HPACK, the header compression of HTTP/2 (RFC 7541), for our server side.
//!
//! Decoding is complete: every representation of §6, integers (§5.1),
//! string literals with and without Huffman coding (§5.2), and the dynamic
//! table with its size updates (§4). It is also frugal: a raw literal comes
//! out as a slice of the header block, a table entry as a shared `Bytes`;
//! only Huffman strings are decoded into new buffers.
//!
//! Encoding is deliberately minimal. Responses are sent as literals "without
//! indexing" (§6.2.2) with the name indexed when the static table has it, so
//! the encoder keeps no dynamic table: it needs no state, never sends a table
//! size update, and cannot get out of step with the peer's decoder. What it
//! gives up is compressing repeated values across responses, which matters
//! little next to the bodies a proxy forwards.

mod huffman;
mod table;
#[cfg(test)]
mod tests;

use bytes::{BufMut, Bytes, BytesMut};

pub(crate) use huffman::HuffmanError;
use table::{DynamicTable, STATIC_TABLE};

/// Why a header block could not be decoded: every case is a connection error
/// of type COMPRESSION_ERROR (RFC 9113 §4.3).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum DecodeError {
    /// The block ends inside a representation (an integer, or before a string).
    #[error("header block truncated inside a representation")]
    Truncated,
    /// An integer (§5.1) does not fit in usize or uses more than 5
    /// continuation octets, more than any sensible value needs.
    #[error("integer overflow in header block")]
    IntegerOverflow,
    /// An index (§2.3.3) that is 0 or past the end of the dynamic table.
    #[error("header table index {0} is out of range")]
    IndexOutOfRange(usize),
    /// A Huffman-coded string literal is invalid (§5.2).
    #[error("invalid Huffman-coded string: {0}")]
    InvalidHuffman(#[from] HuffmanError),
    /// A dynamic table size update above the SETTINGS_HEADER_TABLE_SIZE we
    /// advertised (§4.2, §6.3).
    #[error("dynamic table size update to {requested} above the limit {limit}")]
    TableSizeAboveLimit {
        /// The size the update asked for.
        requested: usize,
        /// The limit we advertised.
        limit: usize,
    },
    /// A dynamic table size update after a field of the block: §4.2 allows
    /// them only at its beginning.
    #[error("dynamic table size update not at the start of the header block")]
    TableSizeUpdateNotAtStart,
    /// A string literal's length runs past the end of the block (§5.2).
    #[error("string literal of {length} octets longer than the {remaining} left in the block")]
    StringTooLong {
        /// The length the literal declares.
        length: usize,
        /// The octets left in the block after its length.
        remaining: usize,
    },
}

/// The error of [`Decoder::decode`]: the block's, or the field callback's.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum DecodeErrorOr<E> {
    /// The block is not valid HPACK: a COMPRESSION_ERROR.
    Hpack(DecodeError),
    /// The callback refused a field; decoding stopped there.
    Field(E),
}

impl<E> From<DecodeError> for DecodeErrorOr<E> {
    fn from(error: DecodeError) -> Self {
        Self::Hpack(error)
    }
}

/// The decoding context of one connection: the dynamic table the peer's
/// encoder fills (RFC 7541 §2.2), which lives as long as the connection.
pub(crate) struct Decoder {
    /// The dynamic table (§2.3.2).
    table: DynamicTable,
    /// The SETTINGS_HEADER_TABLE_SIZE we advertised: the most a size update
    /// may ask for (§4.2).
    max_table_size: usize,
}

impl Decoder {
    /// `max_table_size`: the SETTINGS_HEADER_TABLE_SIZE this side advertised
    /// (4096 by default). The table starts at that size, as the encoder may
    /// use all of it without a size update (§4.2).
    pub(crate) fn new(max_table_size: usize) -> Self {
        Self {
            table: DynamicTable::new(max_table_size),
            max_table_size,
        }
    }

    /// Decodes one whole header block (HEADERS + CONTINUATION payloads joined),
    /// calling `field(name, value)` for each field in order.
    ///
    /// A raw literal is a zero-copy slice of `block`, a static-table entry a
    /// `Bytes::from_static`, a dynamic-table entry a clone of the stored
    /// `Bytes`, and a Huffman string a new buffer. The callback's error stops
    /// decoding and is passed through (e.g. for a header list size limit);
    /// the dynamic table is then no longer in step with the peer's, so the
    /// caller must end the connection as for a COMPRESSION_ERROR.
    pub(crate) fn decode<E>(
        &mut self,
        block: &Bytes,
        mut field: impl FnMut(Bytes, Bytes) -> Result<(), E>,
    ) -> Result<(), DecodeErrorOr<E>> {
        let mut reader = Reader { block, at: 0 };
        let mut seen_field = false;
        while let Some(first) = reader.peek() {
            let (name, value) = if first & 0x80 != 0 {
                // §6.1: indexed header field, 7-bit prefix.
                let index = reader.integer(7)?;
                self.entry(index)?
            } else if first & 0x40 != 0 {
                // §6.2.1: literal with incremental indexing, 6-bit prefix.
                let (name, value) = self.literal(&mut reader, 6)?;
                self.table.insert(own(&name), own(&value));
                (name, value)
            } else if first & 0x20 != 0 {
                // §6.3: dynamic table size update, 5-bit prefix.
                if seen_field {
                    return Err(DecodeError::TableSizeUpdateNotAtStart.into());
                }
                self.size_update(&mut reader)?;
                continue;
            } else {
                // §6.2.2 without indexing (0000) and §6.2.3 never indexed
                // (0001): both 4-bit prefixes, decoded alike; we forward no
                // field to another HPACK encoder from here.
                self.literal(&mut reader, 4)?
            };
            seen_field = true;
            field(name, value).map_err(DecodeErrorOr::Field)?;
        }
        Ok(())
    }

    /// The entry at `index` (§2.3.3): 1–61 static, 62 and up dynamic, newest
    /// first; 0 and anything past the dynamic table are errors (§6.1).
    fn entry(&self, index: usize) -> Result<(Bytes, Bytes), DecodeError> {
        if let Some(&(name, value)) = index.checked_sub(1).and_then(|i| STATIC_TABLE.get(i)) {
            return Ok((Bytes::from_static(name), Bytes::from_static(value)));
        }
        index
            .checked_sub(STATIC_TABLE.len() + 1)
            .and_then(|position| self.table.get(position))
            .map(|(name, value)| (name.clone(), value.clone()))
            .ok_or(DecodeError::IndexOutOfRange(index))
    }

    /// A literal field (§6.2): the name indexed (with a `prefix`-bit integer,
    /// 0 meaning a literal name follows), then the value as a string literal.
    fn literal(&self, reader: &mut Reader<'_>, prefix: u8) -> Result<(Bytes, Bytes), DecodeError> {
        let index = reader.integer(prefix)?;
        let name = if index == 0 {
            reader.string()?
        } else {
            self.entry(index)?.0
        };
        let value = reader.string()?;
        Ok((name, value))
    }

    /// A dynamic table size update (§6.3): at most the advertised limit
    /// (§4.2), and applied at once, evicting as needed (§4.3).
    fn size_update(&mut self, reader: &mut Reader<'_>) -> Result<(), DecodeError> {
        let requested = reader.integer(5)?;
        if requested > self.max_table_size {
            return Err(DecodeError::TableSizeAboveLimit {
                requested,
                limit: self.max_table_size,
            });
        }
        self.table.set_max_size(requested);
        Ok(())
    }
}

/// A copy of a decoded string for the dynamic table.
///
/// A raw literal is a slice of the whole header block: stored as such, each
/// small entry would keep its entire block alive for as long as it stays in
/// the table, letting a peer pin many times the table size in memory.
/// Copying bounds the table's memory by its size (at most the limit we
/// advertised), at a cost bounded by that size.
fn own(string: &Bytes) -> Bytes {
    Bytes::copy_from_slice(string)
}

/// A position in a header block being decoded.
struct Reader<'a> {
    /// The whole block.
    block: &'a Bytes,
    /// The offset of the next octet to read.
    at: usize,
}

impl Reader<'_> {
    /// The next octet, without consuming it; `None` at the end of the block.
    fn peek(&self) -> Option<u8> {
        self.block.get(self.at).copied()
    }

    /// Consumes the next octet; the block must not end here.
    fn octet(&mut self) -> Result<u8, DecodeError> {
        let octet = self.peek().ok_or(DecodeError::Truncated)?;
        self.at += 1;
        Ok(octet)
    }

    /// An integer with a `prefix`-bit prefix (§5.1), starting in the current
    /// octet, whose high bits (the representation's pattern) are ignored.
    ///
    /// At most 5 continuation octets are accepted (35 bits): no length,
    /// index or table size needs more, and it bounds the work per integer.
    fn integer(&mut self, prefix: u8) -> Result<usize, DecodeError> {
        let mask = (1u8 << prefix) - 1;
        let first = self.octet()? & mask;
        if first < mask {
            return Ok(usize::from(first));
        }
        let mut value = u64::from(mask);
        for shift in (0..5).map(|i| 7 * i) {
            let octet = self.octet()?;
            value += u64::from(octet & 0x7f) << shift;
            if octet & 0x80 == 0 {
                return usize::try_from(value).map_err(|_| DecodeError::IntegerOverflow);
            }
        }
        Err(DecodeError::IntegerOverflow)
    }

    /// A string literal (§5.2): a raw one as a slice of the block, a Huffman
    /// one decoded into a new buffer.
    fn string(&mut self) -> Result<Bytes, DecodeError> {
        let huffman = self.peek().ok_or(DecodeError::Truncated)? & 0x80 != 0;
        let length = self.integer(7)?;
        let remaining = self.block.len() - self.at;
        if length > remaining {
            return Err(DecodeError::StringTooLong { length, remaining });
        }
        let start = self.at;
        self.at += length;
        if huffman {
            let mut decoded = Vec::new();
            huffman::decode(&self.block[start..self.at], &mut decoded)?;
            Ok(Bytes::from(decoded))
        } else {
            Ok(self.block.slice(start..self.at))
        }
    }
}

/// Appends an integer with a `prefix`-bit prefix (§5.1); `pattern` holds the
/// representation's bits above the prefix in the first octet.
fn encode_integer(value: usize, prefix: u8, pattern: u8, out: &mut BytesMut) {
    let mask = (1usize << prefix) - 1;
    if value < mask {
        // value < mask ≤ 127: fits in the octet.
        out.put_u8(pattern | value as u8);
        return;
    }
    out.put_u8(pattern | mask as u8);
    let mut rest = value - mask;
    while rest >= 0x80 {
        // The low 7 bits, with the continuation flag.
        out.put_u8(0x80 | (rest & 0x7f) as u8);
        rest >>= 7;
    }
    // rest < 0x80 here.
    out.put_u8(rest as u8);
}

/// Appends a raw (non-Huffman) string literal (§5.2).
///
/// Huffman coding would save a little on text values but costs a pass over
/// each; the bodies that follow dwarf what it would save.
fn encode_string(string: &[u8], out: &mut BytesMut) {
    encode_integer(string.len(), 7, 0x00, out);
    out.put_slice(string);
}

/// Appends the `:status` pseudo-field: indexed (§6.1) for the statuses in the
/// static table (200, 204, 206, 304, 400, 404, 500), otherwise a literal
/// without indexing (§6.2.2) with the indexed name `:status` (static index 8).
pub(crate) fn encode_status(status: u16, out: &mut BytesMut) {
    let index = match status {
        200 => 8,
        204 => 9,
        206 => 10,
        304 => 11,
        400 => 12,
        404 => 13,
        500 => 14,
        _ => {
            encode_integer(8, 4, 0x00, out);
            let mut digits = [0u8; 20];
            let text = crate::headers::decimal(u64::from(status), &mut digits);
            encode_string(text, out);
            return;
        }
    };
    encode_integer(index, 7, 0x80, out);
}

/// Appends one field as a "literal header field without indexing" (§6.2.2):
/// the name indexed when the static table has it, else a literal name; the
/// value a literal, no Huffman. The encoder never inserts into the dynamic
/// table, so it needs no state and never sends a table size update.
/// `name` is already lower-case (caller guarantees).
pub(crate) fn encode_field(name: &[u8], value: &[u8], out: &mut BytesMut) {
    if let Some(index) = table::static_name_index(name) {
        encode_integer(index, 4, 0x00, out);
    } else {
        out.put_u8(0x00);
        encode_string(name, out);
    }
    encode_string(value, out);
}
