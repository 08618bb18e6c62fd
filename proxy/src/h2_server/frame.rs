//! HTTP/2 frames (RFC 9113 §4, §6): reading them off the connection's
//! buffer, and writing the few the server sends.
//!
//! A frame is read only once whole, and its payload is a slice of the read
//! buffer: a request's header block and body bytes are never copied on the
//! way in.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// RFC 9113 §3.4: what a client sends before its first frame.
pub(crate) const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// RFC 9113 §4.1: the frame header's length.
pub(crate) const HEADER_LEN: usize = 9;

/// RFC 9113 §6.5.2: the initial and smallest SETTINGS_MAX_FRAME_SIZE.
pub(crate) const DEFAULT_MAX_FRAME_SIZE: u32 = 16_384;

/// RFC 9113 §6.9.1: the largest window a flow-control window may reach.
pub(crate) const MAX_WINDOW: i64 = (1 << 31) - 1;

/// RFC 9113 §6.9.2: every window starts at this size until SETTINGS change it.
pub(crate) const DEFAULT_WINDOW: u32 = 65_535;

/// RFC 9113 §11.2: frame types.
pub(crate) mod kind {
    pub(crate) const DATA: u8 = 0x0;
    pub(crate) const HEADERS: u8 = 0x1;
    pub(crate) const PRIORITY: u8 = 0x2;
    pub(crate) const RST_STREAM: u8 = 0x3;
    pub(crate) const SETTINGS: u8 = 0x4;
    pub(crate) const PUSH_PROMISE: u8 = 0x5;
    pub(crate) const PING: u8 = 0x6;
    pub(crate) const GOAWAY: u8 = 0x7;
    pub(crate) const WINDOW_UPDATE: u8 = 0x8;
    pub(crate) const CONTINUATION: u8 = 0x9;
}

/// RFC 9113 §6: frame flags.
pub(crate) mod flag {
    pub(crate) const END_STREAM: u8 = 0x1;
    pub(crate) const ACK: u8 = 0x1;
    pub(crate) const END_HEADERS: u8 = 0x4;
    pub(crate) const PADDED: u8 = 0x8;
    pub(crate) const PRIORITY: u8 = 0x20;
}

/// RFC 9113 §6.5.2: setting identifiers.
pub(crate) mod setting {
    pub(crate) const HEADER_TABLE_SIZE: u16 = 0x1;
    pub(crate) const ENABLE_PUSH: u16 = 0x2;
    pub(crate) const MAX_CONCURRENT_STREAMS: u16 = 0x3;
    pub(crate) const INITIAL_WINDOW_SIZE: u16 = 0x4;
    pub(crate) const MAX_FRAME_SIZE: u16 = 0x5;
    pub(crate) const MAX_HEADER_LIST_SIZE: u16 = 0x6;
}

/// RFC 9113 §7: error codes, for RST_STREAM and GOAWAY.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Reason(pub(crate) u32);

impl Reason {
    pub(crate) const NO_ERROR: Self = Self(0x0);
    pub(crate) const PROTOCOL_ERROR: Self = Self(0x1);
    pub(crate) const INTERNAL_ERROR: Self = Self(0x2);
    pub(crate) const FLOW_CONTROL_ERROR: Self = Self(0x3);
    pub(crate) const STREAM_CLOSED: Self = Self(0x5);
    pub(crate) const FRAME_SIZE_ERROR: Self = Self(0x6);
    pub(crate) const REFUSED_STREAM: Self = Self(0x7);
    #[cfg(test)]
    pub(crate) const CANCEL: Self = Self(0x8);
    pub(crate) const COMPRESSION_ERROR: Self = Self(0x9);
    pub(crate) const ENHANCE_YOUR_CALM: Self = Self(0xb);
}

/// A whole frame as read: its header and its payload.
#[derive(Debug)]
pub(crate) struct Frame {
    pub(crate) kind: u8,
    pub(crate) flags: u8,
    pub(crate) stream: u32,
    pub(crate) payload: Bytes,
}

impl Frame {
    pub(crate) fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }
}

/// A frame whose length exceeds what this side advertised
/// (RFC 9113 §4.2: a connection error of type FRAME_SIZE_ERROR).
#[derive(Debug)]
pub(crate) struct TooLarge;

/// Takes the next whole frame off `buf`, if one has arrived.
pub(crate) fn read(buf: &mut BytesMut, max_frame_size: u32) -> Result<Option<Frame>, TooLarge> {
    if buf.len() < HEADER_LEN {
        return Ok(None);
    }
    let length = u32::from_be_bytes([0, buf[0], buf[1], buf[2]]);
    if length > max_frame_size {
        return Err(TooLarge);
    }
    let whole = HEADER_LEN + length as usize;
    if buf.len() < whole {
        buf.reserve(whole - buf.len());
        return Ok(None);
    }
    let kind = buf[3];
    let flags = buf[4];
    // RFC 9113 §4.1: the reserved bit is ignored on receipt.
    let stream = u32::from_be_bytes([buf[5], buf[6], buf[7], buf[8]]) & 0x7fff_ffff;
    buf.advance(HEADER_LEN);
    let payload = buf.split_to(length as usize).freeze();
    Ok(Some(Frame {
        kind,
        flags,
        stream,
        payload,
    }))
}

/// Padding of a frame that has none, or that is malformed
/// (RFC 9113 §6.1: a pad length not less than the payload's is a
/// PROTOCOL_ERROR).
#[derive(Debug)]
pub(crate) struct BadPadding;

/// The payload of a DATA or HEADERS frame without its padding fields.
pub(crate) fn unpad(frame: &Frame) -> Result<Bytes, BadPadding> {
    let mut payload = frame.payload.clone();
    if !frame.has(flag::PADDED) {
        return Ok(payload);
    }
    let Some(&pad) = payload.first() else {
        return Err(BadPadding);
    };
    let pad = usize::from(pad);
    if pad >= payload.len() {
        return Err(BadPadding);
    }
    payload.advance(1);
    payload.truncate(payload.len() - pad);
    Ok(payload)
}

/// Writes a frame header for a payload of `length` bytes.
pub(crate) fn head(out: &mut BytesMut, length: usize, kind: u8, flags: u8, stream: u32) {
    debug_assert!(length < 1 << 24, "frame payloads fit 24 bits");
    let length = (length as u32).to_be_bytes();
    out.put_slice(&length[1..]);
    out.put_u8(kind);
    out.put_u8(flags);
    out.put_u32(stream);
}

/// Our SETTINGS, sent first (RFC 9113 §3.4).
pub(crate) fn settings(out: &mut BytesMut, values: &[(u16, u32)]) {
    head(out, values.len() * 6, kind::SETTINGS, 0, 0);
    for &(id, value) in values {
        out.put_u16(id);
        out.put_u32(value);
    }
}

pub(crate) fn settings_ack(out: &mut BytesMut) {
    head(out, 0, kind::SETTINGS, flag::ACK, 0);
}

pub(crate) fn ping_ack(out: &mut BytesMut, payload: &[u8]) {
    head(out, payload.len(), kind::PING, flag::ACK, 0);
    out.put_slice(payload);
}

pub(crate) fn window_update(out: &mut BytesMut, stream: u32, increment: u32) {
    head(out, 4, kind::WINDOW_UPDATE, 0, stream);
    out.put_u32(increment);
}

pub(crate) fn rst_stream(out: &mut BytesMut, stream: u32, reason: Reason) {
    head(out, 4, kind::RST_STREAM, 0, stream);
    out.put_u32(reason.0);
}

pub(crate) fn goaway(out: &mut BytesMut, last_stream: u32, reason: Reason) {
    head(out, 8, kind::GOAWAY, 0, 0);
    out.put_u32(last_stream);
    out.put_u32(reason.0);
}

pub(crate) fn data(out: &mut BytesMut, stream: u32, payload: &[u8], end_stream: bool) {
    let flags = if end_stream { flag::END_STREAM } else { 0 };
    head(out, payload.len(), kind::DATA, flags, stream);
    out.put_slice(payload);
}

/// Writes a header block as HEADERS and, past `max_frame_size`,
/// CONTINUATION frames (RFC 9113 §6.10).
pub(crate) fn headers(
    out: &mut BytesMut,
    stream: u32,
    block: &[u8],
    end_stream: bool,
    max_frame_size: usize,
) {
    let mut chunks = block.chunks(max_frame_size.max(1));
    let first = chunks.next().unwrap_or_default();
    let mut kind = kind::HEADERS;
    let mut flags = if end_stream { flag::END_STREAM } else { 0 };
    let mut chunk = first;
    loop {
        let next = chunks.next();
        if next.is_none() {
            flags |= flag::END_HEADERS;
        }
        head(out, chunk.len(), kind, flags, stream);
        out.put_slice(chunk);
        let Some(next) = next else {
            return;
        };
        chunk = next;
        kind = kind::CONTINUATION;
        flags = 0;
    }
}

/// A SETTINGS payload's parameters (RFC 9113 §6.5.1: six bytes each).
pub(crate) fn settings_values(payload: &[u8]) -> impl Iterator<Item = (u16, u32)> + '_ {
    payload.chunks_exact(6).map(|chunk| {
        (
            u16::from_be_bytes([chunk[0], chunk[1]]),
            u32::from_be_bytes([chunk[2], chunk[3], chunk[4], chunk[5]]),
        )
    })
}

/// A 4-byte payload read as a 31-bit value (WINDOW_UPDATE) or a code
/// (RST_STREAM); `None` when the payload is not 4 bytes long.
pub(crate) fn u32_payload(payload: &[u8]) -> Option<u32> {
    let bytes: [u8; 4] = payload.try_into().ok()?;
    Some(u32::from_be_bytes(bytes))
}
