//! One HTTP/2 connection: frames in, answers out, in the connection's own
//! task.
//!
//! Each pass reads what has arrived, handles every whole frame in it,
//! collects the answers and body frames that are ready, and writes all of
//! it out in one write. Streams are entries in a map, their pending steps
//! members of one set of futures ([`Work`]); nothing is shared with another
//! task but a request body's channel, so no lock is taken per frame.

use std::collections::HashMap;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use futures_util::stream::{FuturesUnordered, StreamExt as _};
use http::{Request, Response, StatusCode, Version};
use http_body::Body as _;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;

use super::body::{NoBody, Part, Received, Taken};
use super::frame::{self, flag, kind, setting, Frame, Reason};
use super::hpack::{self, Decoder};
use super::request::{self, Refused};
use super::work::{self, Answering, Done, Job, Work};
use crate::dataplane::DataPlane;
use crate::handler::{handle, ConnectionInfo, ProxyBody};
use crate::idle_watch::Watch;

/// SETTINGS_MAX_CONCURRENT_STREAMS we advertise (hyper's default was the same).
const MAX_STREAMS: u32 = 200;
/// SETTINGS_INITIAL_WINDOW_SIZE we advertise: how much of one request's
/// body may arrive before the forwarder takes it.
const STREAM_WINDOW: u32 = 1 << 20;
/// The connection's receive window: bounds what all of its request bodies
/// together may buffer.
const CONNECTION_WINDOW: u32 = 1 << 20;
/// SETTINGS_MAX_HEADER_LIST_SIZE we advertise; larger heads are answered 431.
const MAX_HEADER_LIST: u32 = 16 << 10;
/// SETTINGS_HEADER_TABLE_SIZE: the HPACK table the client may fill.
const HEADER_TABLE: u32 = 4096;
/// A header block still growing past this (in CONTINUATION frames) ends
/// the connection: it could only be refused, and it holds memory.
const MAX_BLOCK: usize = 4 * MAX_HEADER_LIST as usize;
/// Output held before the connection stops reading and answering: a client
/// that does not read cannot make the server buffer without bound.
const HIGH_WATER: usize = 64 << 10;
/// Passes made in one wake-up before yielding to the worker's other tasks.
const PASSES: usize = 16;
/// Streams a client may reset before it looks like an attack
/// (CVE-2023-44487); past it, resets must stay under half of the streams.
const RESET_ALLOWANCE: u64 = 200;

/// Why a connection ended other than in order: reading or writing failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Ended {
    #[error("HTTP/2 connection: {0}")]
    Io(#[from] std::io::Error),
}

pub(crate) struct Connection<I> {
    io: I,
    plane: Arc<DataPlane>,
    info: Arc<ConnectionInfo>,
    watch: Arc<Watch>,
    read: BytesMut,
    out: BytesMut,
    /// Scratch for encoding one header block.
    block: BytesMut,
    decoder: Decoder,
    streams: HashMap<u32, Stream, foldhash::fast::RandomState>,
    work: FuturesUnordered<Work>,
    /// Members of `work` whose stream was reset: dropped at the next rebuild.
    cancelled: usize,
    taken: (mpsc::UnboundedSender<Taken>, mpsc::UnboundedReceiver<Taken>),
    /// The highest stream the client opened.
    last_stream: u32,
    /// A header block whose CONTINUATION frames are still to come.
    partial: Option<Partial>,
    /// The client's window for our DATA on the whole connection.
    send_window: i64,
    /// SETTINGS_INITIAL_WINDOW_SIZE of the client.
    peer_window: i64,
    /// SETTINGS_MAX_FRAME_SIZE of the client.
    peer_frame: usize,
    /// What the client may still send on the whole connection.
    recv_window: i64,
    /// Bytes received and consumed but not yet given back.
    recv_unacked: u32,
    /// The client's first frame was its SETTINGS (RFC 9113 §3.4).
    greeted: bool,
    /// A GOAWAY has been sent: no new streams are taken.
    going_away: bool,
    /// The client sent GOAWAY: it opens no more streams.
    peer_gone: bool,
    /// The client's preface (RFC 9113 §3.4) has been read.
    prefaced: bool,
    /// A connection error was sent: only the output is still written.
    failed: bool,
    opened: u64,
    resets: u64,
    /// Streams waiting for window, in the order they ran out.
    blocked: Vec<u32>,
}

/// A HEADERS frame whose block continues in CONTINUATION frames.
struct Partial {
    stream: u32,
    end_stream: bool,
    block: BytesMut,
}

/// An open stream: it exists until its answer has ended.
struct Stream {
    /// The client's window for this stream's DATA.
    send_window: i64,
    /// The answer's body, held while the stream waits for window, with the
    /// bytes that did not fit.
    blocked: Option<(ProxyBody, Bytes)>,
    /// While the client may still send on the stream.
    recv: Option<Recv>,
    /// Body bytes handed to the forwarder's channel and not yet taken:
    /// given back to the connection's window if the stream closes first.
    buffered: u32,
}

/// The receiving side of a stream whose request has a body.
struct Recv {
    parts: mpsc::UnboundedSender<Part>,
    /// What the client may still send on this stream.
    window: i64,
    /// Bytes consumed but not yet given back.
    unacked: u32,
    content_length: Option<u64>,
    received: u64,
}

/// A connection error (RFC 9113 §5.4.1): GOAWAY with this code, then close.
struct Fail(Reason);

/// How far a body's frame got.
enum Sent {
    /// The stream ended (or was reset).
    Ended,
    /// Sent whole; the body has more.
    More,
    /// These bytes wait for the client's window.
    Blocked(Bytes),
}

impl<I> Connection<I>
where
    I: AsyncRead + AsyncWrite + Unpin,
{
    pub(crate) fn new(
        io: I,
        plane: Arc<DataPlane>,
        info: Arc<ConnectionInfo>,
        watch: Arc<Watch>,
    ) -> Self {
        let mut out = BytesMut::with_capacity(16 << 10);
        frame::settings(
            &mut out,
            &[
                (setting::HEADER_TABLE_SIZE, HEADER_TABLE),
                (setting::MAX_CONCURRENT_STREAMS, MAX_STREAMS),
                (setting::INITIAL_WINDOW_SIZE, STREAM_WINDOW),
                (setting::MAX_HEADER_LIST_SIZE, MAX_HEADER_LIST),
            ],
        );
        frame::window_update(&mut out, 0, CONNECTION_WINDOW - frame::DEFAULT_WINDOW);
        Self {
            io,
            plane,
            info,
            watch,
            read: BytesMut::with_capacity(16 << 10),
            out,
            block: BytesMut::new(),
            decoder: Decoder::new(HEADER_TABLE as usize),
            streams: HashMap::default(),
            work: FuturesUnordered::new(),
            cancelled: 0,
            taken: mpsc::unbounded_channel(),
            last_stream: 0,
            partial: None,
            send_window: i64::from(frame::DEFAULT_WINDOW),
            peer_window: i64::from(frame::DEFAULT_WINDOW),
            peer_frame: frame::DEFAULT_MAX_FRAME_SIZE as usize,
            recv_window: i64::from(CONNECTION_WINDOW),
            recv_unacked: 0,
            greeted: false,
            prefaced: false,
            going_away: false,
            peer_gone: false,
            failed: false,
            opened: 0,
            resets: 0,
            blocked: Vec::new(),
        }
    }

    /// Serves the connection until it ends.
    pub(crate) async fn run(mut self) -> Result<(), Ended> {
        let ended = std::future::poll_fn(|cx| self.poll(cx)).await;
        if ended.is_ok() {
            // close_notify and FIN; a client already gone makes this fail.
            let _ = tokio::io::AsyncWriteExt::shutdown(&mut self.io).await;
        }
        ended
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Ended>> {
        for _ in 0..PASSES {
            let mut progress = false;
            if !self.going_away && self.watch.poll_closing(cx) {
                // RFC 9113 §6.8: the streams opened so far are still answered.
                frame::goaway(&mut self.out, self.last_stream, Reason::NO_ERROR);
                self.going_away = true;
            }
            if !self.failed && self.out.len() < HIGH_WATER {
                match self.poll_read(cx) {
                    Poll::Ready(Ok(true)) => progress = true,
                    Poll::Ready(Ok(false)) => {
                        // The client closed its side: nobody is left to answer.
                        return Poll::Ready(Ok(()));
                    }
                    Poll::Ready(Err(error)) => return Poll::Ready(Err(Ended::Io(error))),
                    Poll::Pending => {}
                }
                if let Err(Fail(reason)) = self.on_frames(cx) {
                    self.fail(reason);
                }
            }
            if !self.failed {
                progress |= self.poll_taken(cx);
                progress |= self.poll_work(cx);
            }
            match self.poll_write(cx) {
                Poll::Ready(Ok(wrote)) => progress |= wrote,
                Poll::Ready(Err(error)) => return Poll::Ready(Err(Ended::Io(error))),
                Poll::Pending => {}
            }
            let done =
                self.failed || ((self.going_away || self.peer_gone) && self.streams.is_empty());
            if done && self.out.is_empty() {
                return Poll::Ready(Ok(()));
            }
            if !progress {
                return Poll::Pending;
            }
        }
        // Still busy: let the worker's other connections run first.
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    // === reading ===

    /// Reads what has arrived; `false` at the end of the stream.
    fn poll_read(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<bool>> {
        if self.read.capacity() - self.read.len() < 4096 {
            self.read.reserve(16 << 10);
        }
        match std::task::ready!(tokio_util::io::poll_read_buf(
            std::pin::Pin::new(&mut self.io),
            cx,
            &mut self.read
        )) {
            Ok(0) => Poll::Ready(Ok(false)),
            Ok(_) => Poll::Ready(Ok(true)),
            Err(error) => Poll::Ready(Err(error)),
        }
    }

    /// Handles every whole frame read so far.
    fn on_frames(&mut self, cx: &mut Context<'_>) -> Result<(), Fail> {
        if !self.prefaced {
            let seen = self.read.len().min(frame::PREFACE.len());
            if self.read[..seen] != frame::PREFACE[..seen] {
                return Err(Fail(Reason::PROTOCOL_ERROR));
            }
            if seen < frame::PREFACE.len() {
                return Ok(());
            }
            bytes::Buf::advance(&mut self.read, seen);
            self.prefaced = true;
        }
        while let Some(frame) = frame::read(&mut self.read, frame::DEFAULT_MAX_FRAME_SIZE)
            .map_err(|_| Fail(Reason::FRAME_SIZE_ERROR))?
        {
            self.on_frame(frame, cx)?;
            if self.failed {
                break;
            }
        }
        Ok(())
    }

    fn on_frame(&mut self, frame: Frame, cx: &mut Context<'_>) -> Result<(), Fail> {
        if !self.greeted {
            // RFC 9113 §3.4: the preface ends with the client's SETTINGS.
            if frame.kind != kind::SETTINGS || frame.has(flag::ACK) {
                return Err(Fail(Reason::PROTOCOL_ERROR));
            }
            self.greeted = true;
        }
        if self.partial.is_some() && frame.kind != kind::CONTINUATION {
            // RFC 9113 §6.10: a header block is contiguous.
            return Err(Fail(Reason::PROTOCOL_ERROR));
        }
        match frame.kind {
            kind::DATA => self.on_data(frame),
            kind::HEADERS => self.on_headers(frame),
            kind::CONTINUATION => self.on_continuation(frame),
            kind::PRIORITY => self.on_priority(&frame),
            kind::RST_STREAM => self.on_reset(&frame),
            kind::SETTINGS => self.on_settings(&frame, cx),
            kind::PING => self.on_ping(&frame),
            kind::GOAWAY => {
                if frame.stream != 0 {
                    return Err(Fail(Reason::PROTOCOL_ERROR));
                }
                self.peer_gone = true;
                Ok(())
            }
            kind::WINDOW_UPDATE => self.on_window_update(&frame, cx),
            // RFC 9113 §8.4: clients cannot push.
            kind::PUSH_PROMISE => Err(Fail(Reason::PROTOCOL_ERROR)),
            // RFC 9113 §5.5: unknown frame types are ignored.
            _ => Ok(()),
        }
    }

    /// A frame on a stream the client has not opened yet (RFC 9113 §5.1).
    fn idle(&self, stream: u32) -> bool {
        stream > self.last_stream
    }

    fn on_data(&mut self, frame: Frame) -> Result<(), Fail> {
        if frame.stream == 0 || self.idle(frame.stream) {
            return Err(Fail(Reason::PROTOCOL_ERROR));
        }
        // RFC 9113 §6.9.1: the whole payload counts, padding included.
        let length = frame.payload.len() as u32;
        self.recv_window -= i64::from(length);
        if self.recv_window < 0 {
            return Err(Fail(Reason::FLOW_CONTROL_ERROR));
        }
        let data = frame::unpad(&frame).map_err(|_| Fail(Reason::PROTOCOL_ERROR))?;
        let end_stream = frame.has(flag::END_STREAM);
        let Some(recv) = self
            .streams
            .get_mut(&frame.stream)
            .and_then(|stream| stream.recv.as_mut())
        else {
            // A stream already closed (by a reset the client had not yet
            // seen, or an answer that ended it): nothing takes the bytes.
            self.give_back(length);
            if self.streams.contains_key(&frame.stream) {
                self.reset(frame.stream, Reason::STREAM_CLOSED);
            }
            return Ok(());
        };
        recv.window -= i64::from(length);
        recv.received += data.len() as u64;
        let too_much = recv.content_length.is_some_and(|declared| {
            recv.received > declared || (end_stream && recv.received != declared)
        });
        let error = if recv.window < 0 {
            Some(Reason::FLOW_CONTROL_ERROR)
        } else if too_much {
            // RFC 9113 §8.1.1: DATA must add up to Content-Length.
            Some(Reason::PROTOCOL_ERROR)
        } else {
            None
        };
        if let Some(reason) = error {
            self.give_back(length);
            self.reset(frame.stream, reason);
            return Ok(());
        }
        // Padding is consumed at once; the data when the forwarder takes it.
        let padding = length - data.len() as u32;
        let delivered = data.is_empty() || recv.parts.send(Part::Data(data)).is_ok();
        let held = if delivered { length - padding } else { 0 };
        if end_stream {
            let _ = recv.parts.send(Part::End);
        }
        self.consumed(frame.stream, length - held);
        if let Some(stream) = self.streams.get_mut(&frame.stream) {
            stream.buffered += held;
            if end_stream {
                stream.recv = None;
            }
        }
        Ok(())
    }

    fn on_headers(&mut self, frame: Frame) -> Result<(), Fail> {
        if frame.stream == 0 {
            return Err(Fail(Reason::PROTOCOL_ERROR));
        }
        let mut block = frame::unpad(&frame).map_err(|_| Fail(Reason::PROTOCOL_ERROR))?;
        let mut self_dependent = false;
        if frame.has(flag::PRIORITY) {
            if block.len() < 5 {
                return Err(Fail(Reason::FRAME_SIZE_ERROR));
            }
            let dependency = u32::from_be_bytes([block[0], block[1], block[2], block[3]]);
            self_dependent = dependency & 0x7fff_ffff == frame.stream;
            block = block.slice(5..);
        }
        let end_stream = frame.has(flag::END_STREAM);
        if !frame.has(flag::END_HEADERS) {
            self.partial = Some(Partial {
                stream: frame.stream,
                end_stream,
                block: BytesMut::from(&block[..]),
            });
            return Ok(());
        }
        self.on_block(frame.stream, end_stream, &block, self_dependent)
    }

    fn on_continuation(&mut self, frame: Frame) -> Result<(), Fail> {
        let Some(partial) = self.partial.as_mut() else {
            return Err(Fail(Reason::PROTOCOL_ERROR));
        };
        if partial.stream != frame.stream {
            return Err(Fail(Reason::PROTOCOL_ERROR));
        }
        partial.block.extend_from_slice(&frame.payload);
        if partial.block.len() > MAX_BLOCK {
            return Err(Fail(Reason::ENHANCE_YOUR_CALM));
        }
        if !frame.has(flag::END_HEADERS) {
            return Ok(());
        }
        let Some(partial) = self.partial.take() else {
            return Ok(());
        };
        self.on_block(
            partial.stream,
            partial.end_stream,
            &partial.block.freeze(),
            false,
        )
    }

    /// A whole header block: a new request, or the trailers of one.
    fn on_block(
        &mut self,
        stream: u32,
        end_stream: bool,
        block: &Bytes,
        self_dependent: bool,
    ) -> Result<(), Fail> {
        if !self.idle(stream) {
            return self.on_trailers(stream, end_stream, block);
        }
        // RFC 9113 §5.1.1: clients open odd-numbered streams, in order.
        if stream % 2 == 0 {
            return Err(Fail(Reason::PROTOCOL_ERROR));
        }
        self.last_stream = stream;
        let decoded = request::decode(&mut self.decoder, block, MAX_HEADER_LIST as usize)
            .map_err(|_| Fail(Reason::COMPRESSION_ERROR))?;
        if self.going_away || self.streams.len() >= MAX_STREAMS as usize {
            // RFC 9113 §5.1.2 and §8.7: refused streams are safe to retry.
            frame::rst_stream(&mut self.out, stream, Reason::REFUSED_STREAM);
            return Ok(());
        }
        let head = match decoded {
            Ok(_) if self_dependent => Err(Refused::Malformed("stream depends on itself")),
            Ok(head) if end_stream && head.content_length.is_some_and(|length| length > 0) => {
                Err(Refused::Malformed("Content-Length without DATA"))
            }
            decoded => decoded,
        };
        let head = match head {
            Ok(head) => head,
            Err(Refused::Malformed(why)) => {
                tracing::debug!(peer = %self.info.peer, stream, why, "malformed HTTP/2 request");
                frame::rst_stream(&mut self.out, stream, Reason::PROTOCOL_ERROR);
                return Ok(());
            }
            Err(Refused::TooLarge) => {
                self.block.clear();
                hpack::encode_status(
                    StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE.as_u16(),
                    &mut self.block,
                );
                frame::headers(&mut self.out, stream, &self.block, true, self.peer_frame);
                if !end_stream {
                    frame::rst_stream(&mut self.out, stream, Reason::NO_ERROR);
                }
                return Ok(());
            }
        };
        self.opened += 1;
        let (answering, recv) = if end_stream {
            (self.answer(head, NoBody), None)
        } else {
            let (parts, receiver) = mpsc::unbounded_channel();
            let body = Received::new(stream, receiver, self.taken.0.clone(), head.content_length);
            let recv = Recv {
                parts,
                window: i64::from(STREAM_WINDOW),
                unacked: 0,
                content_length: head.content_length,
                received: 0,
            };
            (self.answer(head, body), Some(recv))
        };
        self.streams.insert(
            stream,
            Stream {
                send_window: self.peer_window,
                blocked: None,
                recv,
                buffered: 0,
            },
        );
        self.work.push(Work {
            stream,
            job: Some(Job::Answer(answering)),
        });
        Ok(())
    }

    fn answer<B: crate::forward::RequestBody>(&self, head: request::Head, body: B) -> Answering {
        let mut request = Request::new(body);
        *request.method_mut() = head.method;
        *request.uri_mut() = head.uri;
        *request.version_mut() = Version::HTTP_2;
        *request.headers_mut() = head.headers;
        Box::pin(handle(
            Arc::clone(&self.plane),
            Arc::clone(&self.info),
            request,
        ))
    }

    /// A header block on a stream already opened: trailers, which end it.
    fn on_trailers(&mut self, stream: u32, end_stream: bool, block: &Bytes) -> Result<(), Fail> {
        let decoded = request::decode_trailers(&mut self.decoder, block, MAX_HEADER_LIST as usize)
            .map_err(|_| Fail(Reason::COMPRESSION_ERROR))?;
        let Some(recv) = self
            .streams
            .get_mut(&stream)
            .and_then(|open| open.recv.as_mut())
        else {
            // Closed: by a reset the client had not seen yet, or it had
            // already ended its side (RFC 9113 §5.1: STREAM_CLOSED).
            if self.streams.contains_key(&stream) {
                self.reset(stream, Reason::STREAM_CLOSED);
            }
            return Ok(());
        };
        let short = recv
            .content_length
            .is_some_and(|declared| declared != recv.received);
        match decoded {
            Ok(trailers) if end_stream && !short => {
                let _ = recv.parts.send(Part::Trailers(trailers));
                if let Some(open) = self.streams.get_mut(&stream) {
                    open.recv = None;
                }
            }
            // RFC 9113 §8.1: trailers end the stream.
            _ => self.reset(stream, Reason::PROTOCOL_ERROR),
        }
        Ok(())
    }

    fn on_priority(&mut self, frame: &Frame) -> Result<(), Fail> {
        if frame.stream == 0 {
            return Err(Fail(Reason::PROTOCOL_ERROR));
        }
        if frame.payload.len() != 5 {
            // RFC 9113 §6.3: a stream error.
            frame::rst_stream(&mut self.out, frame.stream, Reason::FRAME_SIZE_ERROR);
            self.reset(frame.stream, Reason::FRAME_SIZE_ERROR);
        }
        Ok(())
    }

    fn on_reset(&mut self, frame: &Frame) -> Result<(), Fail> {
        if frame.stream == 0 || self.idle(frame.stream) {
            return Err(Fail(Reason::PROTOCOL_ERROR));
        }
        if frame::u32_payload(&frame.payload).is_none() {
            return Err(Fail(Reason::FRAME_SIZE_ERROR));
        }
        if self.close(frame.stream) {
            self.resets += 1;
            if self.resets > RESET_ALLOWANCE && self.resets * 2 > self.opened {
                return Err(Fail(Reason::ENHANCE_YOUR_CALM));
            }
        }
        Ok(())
    }

    fn on_settings(&mut self, frame: &Frame, cx: &mut Context<'_>) -> Result<(), Fail> {
        if frame.stream != 0 {
            return Err(Fail(Reason::PROTOCOL_ERROR));
        }
        if frame.has(flag::ACK) {
            return match frame.payload.is_empty() {
                true => Ok(()),
                false => Err(Fail(Reason::FRAME_SIZE_ERROR)),
            };
        }
        if frame.payload.len() % 6 != 0 {
            return Err(Fail(Reason::FRAME_SIZE_ERROR));
        }
        for (id, value) in frame::settings_values(&frame.payload) {
            match id {
                setting::ENABLE_PUSH if value > 1 => return Err(Fail(Reason::PROTOCOL_ERROR)),
                setting::INITIAL_WINDOW_SIZE => {
                    let value = i64::from(value);
                    if value > frame::MAX_WINDOW {
                        return Err(Fail(Reason::FLOW_CONTROL_ERROR));
                    }
                    // RFC 9113 §6.9.2: open streams' windows move by the change.
                    let delta = value - self.peer_window;
                    self.peer_window = value;
                    for stream in self.streams.values_mut() {
                        stream.send_window += delta;
                        if stream.send_window > frame::MAX_WINDOW {
                            return Err(Fail(Reason::FLOW_CONTROL_ERROR));
                        }
                    }
                }
                setting::MAX_FRAME_SIZE => {
                    if !(frame::DEFAULT_MAX_FRAME_SIZE..1 << 24).contains(&value) {
                        return Err(Fail(Reason::PROTOCOL_ERROR));
                    }
                    self.peer_frame = value as usize;
                }
                // Our encoder never indexes, so the client's table size and
                // the rest need nothing from us.
                _ => {}
            }
        }
        frame::settings_ack(&mut self.out);
        self.unblock(cx);
        Ok(())
    }

    fn on_ping(&mut self, frame: &Frame) -> Result<(), Fail> {
        if frame.stream != 0 {
            return Err(Fail(Reason::PROTOCOL_ERROR));
        }
        if frame.payload.len() != 8 {
            return Err(Fail(Reason::FRAME_SIZE_ERROR));
        }
        if !frame.has(flag::ACK) {
            frame::ping_ack(&mut self.out, &frame.payload);
        }
        Ok(())
    }

    fn on_window_update(&mut self, frame: &Frame, cx: &mut Context<'_>) -> Result<(), Fail> {
        let Some(increment) = frame::u32_payload(&frame.payload) else {
            return Err(Fail(Reason::FRAME_SIZE_ERROR));
        };
        let increment = i64::from(increment & 0x7fff_ffff);
        if frame.stream == 0 {
            if increment == 0 {
                return Err(Fail(Reason::PROTOCOL_ERROR));
            }
            self.send_window += increment;
            if self.send_window > frame::MAX_WINDOW {
                return Err(Fail(Reason::FLOW_CONTROL_ERROR));
            }
        } else {
            if self.idle(frame.stream) {
                return Err(Fail(Reason::PROTOCOL_ERROR));
            }
            let Some(stream) = self.streams.get_mut(&frame.stream) else {
                return Ok(());
            };
            stream.send_window += increment;
            if increment == 0 {
                self.reset(frame.stream, Reason::PROTOCOL_ERROR);
            } else if stream.send_window > frame::MAX_WINDOW {
                self.reset(frame.stream, Reason::FLOW_CONTROL_ERROR);
            }
        }
        self.unblock(cx);
        Ok(())
    }

    // === flow control of request bodies ===

    /// Gives the client back window for bytes consumed on the connection.
    fn give_back(&mut self, bytes: u32) {
        self.recv_unacked += bytes;
        if self.recv_unacked >= CONNECTION_WINDOW / 2 {
            frame::window_update(&mut self.out, 0, self.recv_unacked);
            self.recv_window += i64::from(self.recv_unacked);
            self.recv_unacked = 0;
        }
    }

    /// Bytes of a stream's body consumed: window for them goes back to the
    /// client, on the stream while it may still send, and on the connection.
    fn consumed(&mut self, stream: u32, bytes: u32) {
        if bytes == 0 {
            return;
        }
        if let Some(recv) = self
            .streams
            .get_mut(&stream)
            .and_then(|open| open.recv.as_mut())
        {
            recv.unacked += bytes;
            if recv.unacked >= STREAM_WINDOW / 2 {
                frame::window_update(&mut self.out, stream, recv.unacked);
                recv.window += i64::from(recv.unacked);
                recv.unacked = 0;
            }
        }
        self.give_back(bytes);
    }

    /// Window for body bytes the forwarder has taken.
    fn poll_taken(&mut self, cx: &mut Context<'_>) -> bool {
        let mut progress = false;
        while let Poll::Ready(Some(taken)) = self.taken.1.poll_recv(cx) {
            progress = true;
            // Bytes of a stream closed since were given back when it closed.
            let Some(open) = self.streams.get_mut(&taken.stream) else {
                continue;
            };
            open.buffered = open.buffered.saturating_sub(taken.bytes);
            self.consumed(taken.stream, taken.bytes);
        }
        progress
    }

    // === answers ===

    fn poll_work(&mut self, cx: &mut Context<'_>) -> bool {
        let mut progress = false;
        while self.out.len() < HIGH_WATER {
            let Poll::Ready(Some((stream, done))) = self.work.poll_next_unpin(cx) else {
                break;
            };
            progress = true;
            match done {
                Done::Cancelled => self.cancelled = self.cancelled.saturating_sub(1),
                Done::Answer(response) => self.on_answer(stream, response, cx),
                Done::Frame(body, frame) => self.on_body_frame(stream, body, frame, cx),
            }
        }
        progress
    }

    fn on_answer(&mut self, stream: u32, response: Response<ProxyBody>, cx: &mut Context<'_>) {
        if !self.streams.contains_key(&stream) {
            return;
        }
        let (parts, body) = response.into_parts();
        let end_stream = body.is_end_stream();
        let lines = match body.get_ref() {
            http_body_util::Either::Left(upstream) => upstream.lines(),
            http_body_util::Either::Right(_) => None,
        };
        self.block.clear();
        super::response::encode_head(&parts, lines, &mut self.block);
        frame::headers(
            &mut self.out,
            stream,
            &self.block,
            end_stream,
            self.peer_frame,
        );
        if end_stream {
            self.finish(stream);
        } else {
            self.pump(stream, body, cx);
        }
    }

    /// Sends the body's frames that are ready; parks it in the set when it
    /// has none ready, or with its stream when the client's window is shut.
    fn pump(&mut self, stream: u32, mut body: ProxyBody, cx: &mut Context<'_>) {
        loop {
            if self.out.len() >= HIGH_WATER {
                return self.park(stream, body);
            }
            let Poll::Ready(frame) = work::poll_body(&mut body, cx) else {
                return self.park(stream, body);
            };
            let end = body.is_end_stream();
            match self.send_frame(stream, end, frame) {
                Sent::Ended => return,
                Sent::More => {}
                Sent::Blocked(rest) => return self.hold(stream, body, rest),
            }
        }
    }

    fn park(&mut self, stream: u32, body: ProxyBody) {
        self.work.push(Work {
            stream,
            job: Some(Job::Body(body)),
        });
    }

    /// Keeps a body with its stream until the client opens its window.
    fn hold(&mut self, stream: u32, body: ProxyBody, rest: Bytes) {
        if let Some(open) = self.streams.get_mut(&stream) {
            open.blocked = Some((body, rest));
            self.blocked.push(stream);
        }
    }

    fn on_body_frame(
        &mut self,
        stream: u32,
        body: ProxyBody,
        frame: Option<Result<http_body::Frame<Bytes>, ()>>,
        cx: &mut Context<'_>,
    ) {
        if !self.streams.contains_key(&stream) {
            return;
        }
        let end = body.is_end_stream();
        let sent = self.send_frame(stream, end, frame);
        self.carry_on(stream, body, sent, cx);
    }

    /// What follows a body's frame: more of the body, or a wait for window.
    fn carry_on(&mut self, stream: u32, body: ProxyBody, sent: Sent, cx: &mut Context<'_>) {
        match sent {
            Sent::Ended => {}
            Sent::More => self.pump(stream, body, cx),
            Sent::Blocked(rest) => self.hold(stream, body, rest),
        }
    }

    /// Sends one frame of a stream's body; `end` when the body has nothing
    /// after it.
    fn send_frame(
        &mut self,
        stream: u32,
        end: bool,
        frame: Option<Result<http_body::Frame<Bytes>, ()>>,
    ) -> Sent {
        let frame = match frame {
            None => return self.send_data(stream, Bytes::new(), true),
            Some(Err(())) => {
                // The upstream broke off: the client must not take what it
                // got as the whole answer.
                self.reset(stream, Reason::INTERNAL_ERROR);
                return Sent::Ended;
            }
            Some(Ok(frame)) => frame,
        };
        let frame = match frame.into_data() {
            Ok(data) => return self.send_data(stream, data, end),
            Err(frame) => frame,
        };
        let Ok(trailers) = frame.into_trailers() else {
            return Sent::More;
        };
        self.block.clear();
        super::response::encode_fields(&trailers, &mut self.block);
        frame::headers(&mut self.out, stream, &self.block, true, self.peer_frame);
        self.finish(stream);
        Sent::Ended
    }

    /// Sends as much of `data` as the windows allow.
    fn send_data(&mut self, stream: u32, mut data: Bytes, end: bool) -> Sent {
        let Some(open) = self.streams.get_mut(&stream) else {
            return Sent::Ended;
        };
        if data.is_empty() && !end {
            return Sent::More;
        }
        loop {
            let window = open.send_window.min(self.send_window).max(0) as usize;
            let size = data.len().min(window).min(self.peer_frame);
            if size == 0 && !data.is_empty() {
                // RFC 9113 §6.9: out of window until WINDOW_UPDATE.
                return Sent::Blocked(data);
            }
            let chunk = data.split_to(size);
            let last = data.is_empty();
            frame::data(&mut self.out, stream, &chunk, last && end);
            open.send_window -= size as i64;
            self.send_window -= size as i64;
            if last {
                break;
            }
        }
        if end {
            self.finish(stream);
            return Sent::Ended;
        }
        Sent::More
    }

    /// Resumes streams that were waiting for window.
    fn unblock(&mut self, cx: &mut Context<'_>) {
        if self.blocked.is_empty() || self.send_window <= 0 {
            return;
        }
        for stream in std::mem::take(&mut self.blocked) {
            let Some((body, data)) = self
                .streams
                .get_mut(&stream)
                .and_then(|open| open.blocked.take())
            else {
                continue;
            };
            let end = body.is_end_stream();
            let sent = self.send_data(stream, data, end);
            self.carry_on(stream, body, sent, cx);
        }
    }

    // === closing streams ===

    /// The answer has ended: the stream closes. A client still sending is
    /// told to stop (RFC 9113 §8.1: RST_STREAM with NO_ERROR).
    fn finish(&mut self, stream: u32) {
        if self
            .streams
            .get(&stream)
            .is_some_and(|open| open.recv.is_some())
        {
            frame::rst_stream(&mut self.out, stream, Reason::NO_ERROR);
        }
        self.remove(stream);
    }

    /// A stream error (RFC 9113 §5.4.2): RST_STREAM, and the stream closes.
    fn reset(&mut self, stream: u32, reason: Reason) {
        frame::rst_stream(&mut self.out, stream, reason);
        self.close(stream);
    }

    /// Closes a stream the client reset or that failed; `true` if it was
    /// open. Its exchange is dropped at once.
    fn close(&mut self, stream: u32) -> bool {
        if !self.streams.contains_key(&stream) {
            return false;
        }
        for work in self.work.iter_mut() {
            if work.stream == stream && work.job.is_some() {
                work.job = None;
                self.cancelled += 1;
            }
        }
        if self.cancelled > 32 && self.cancelled * 2 > self.work.len() {
            // Cancelled members are only dropped when polled, and nothing
            // wakes them: start a set with the live ones.
            let work = std::mem::take(&mut self.work);
            self.work = work.into_iter().filter(|work| work.job.is_some()).collect();
            self.cancelled = 0;
        }
        if let Some(recv) = self
            .streams
            .get(&stream)
            .and_then(|open| open.recv.as_ref())
        {
            let _ = recv.parts.send(Part::Reset);
        }
        self.remove(stream);
        true
    }

    fn remove(&mut self, stream: u32) {
        let Some(open) = self.streams.remove(&stream) else {
            return;
        };
        // What the forwarder will not take now frees the connection's window.
        self.give_back(open.buffered);
    }

    /// A connection error: GOAWAY, then close once it is written.
    fn fail(&mut self, reason: Reason) {
        tracing::debug!(peer = %self.info.peer, code = reason.0, "HTTP/2 connection error");
        frame::goaway(&mut self.out, self.last_stream, reason);
        self.failed = true;
        self.going_away = true;
    }

    // === writing ===

    /// Writes what is pending; `true` if anything was written.
    fn poll_write(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<bool>> {
        let mut wrote = false;
        while !self.out.is_empty() {
            let n = std::task::ready!(std::pin::Pin::new(&mut self.io).poll_write(cx, &self.out))?;
            if n == 0 {
                return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
            }
            bytes::Buf::advance(&mut self.out, n);
            wrote = true;
        }
        if wrote {
            std::task::ready!(std::pin::Pin::new(&mut self.io).poll_flush(cx))?;
        }
        Poll::Ready(Ok(wrote))
    }
}
