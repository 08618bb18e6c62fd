//! TLS 1.3 session tickets sent with the first response instead of alone.
//!
//! A TLS 1.3 server writes its session ticket once it has read the client's
//! `Finished`, and `tokio_rustls` flushes it before the handshake future
//! returns. HTTP clients send their first request right behind `Finished`, so
//! the ticket went out as a write and a packet of its own a few microseconds
//! before the response: for a connection that carries one request, a quarter
//! of the server's writes. Nothing waits for a ticket (a client only needs it
//! for its *next* connection), so [`LateTickets`] keeps it and puts it in
//! front of the connection's next write: the response, or HTTP/2's settings.
//!
//! What may be kept is decided from the records' outer content type, the one
//! thing readable without keys: only a write made entirely of
//! `application_data` records during the handshake. In TLS 1.3 that is a
//! post-handshake message (the ticket) or an encrypted alert; every flight a
//! client waits for starts with a plaintext `handshake` record (ServerHello,
//! HelloRetryRequest) or, in TLS 1.2, carries `change_cipher_spec`. An alert
//! kept when the handshake fails is still sent, by [`LateTickets::release`],
//! and nothing is kept while the handshake waits for the client.
//!
//! The same stream sends a connection's last answer so that the FIN joins
//! it (see [`LateTickets::last_answer`]): for a connection that carries one
//! request, that is one segment fewer for each side to process.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;

/// The TLS record type every TLS 1.3 message after ServerHello travels in.
const APPLICATION_DATA: u8 = 23;
/// Type, version and length.
const RECORD_HEADER: usize = 5;
/// Beyond this a write is not kept: a ticket is about 200 bytes.
const MAX_KEPT: usize = 4096;
/// Slices of a caller's write sent along with what was kept.
const MAX_SLICES: usize = 16;

/// A client's TCP stream under `tokio_rustls`.
#[derive(Debug)]
pub(crate) struct LateTickets {
    io: TcpStream,
    /// Records written after the handshake that wait for the next write.
    kept: Vec<u8>,
    handshaking: bool,
    /// Set for the connection's last answer: see [`LateTickets::last_answer`].
    last: bool,
}

impl LateTickets {
    pub(crate) fn new(io: TcpStream) -> Self {
        Self {
            io,
            kept: Vec::new(),
            handshaking: true,
            last: false,
        }
    }

    /// What is written from now on is the connection's last answer, and the
    /// shutdown comes right behind it: the writes are sent with `MSG_MORE`,
    /// so that the kernel holds their last, short segment and the FIN of
    /// the shutdown travels in it instead of in a segment of its own, which
    /// the client would have to receive and acknowledge apart. A shutdown
    /// or close always sends what is held, so nothing waits on the mark.
    pub(crate) fn last_answer(&mut self) {
        self.last = true;
    }

    /// The handshake is over: nothing more is kept, and what was kept leaves
    /// with the next write (or the shutdown).
    pub(crate) fn handshake_done(&mut self) {
        self.handshaking = false;
    }

    /// Sends what was kept without waiting, for a handshake that failed: its
    /// alert tells the client why.
    pub(crate) fn release(&mut self) {
        if !self.kept.is_empty() {
            // Best effort: the connection is being dropped either way.
            let _ = self.io.try_write(&self.kept);
            self.kept.clear();
        }
    }

    /// Writes the kept bytes and then `bufs` in one system call, and returns
    /// how much of `bufs` went out.
    fn poll_write_behind_kept(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        while !self.kept.is_empty() {
            // On the stack: this is the first response's write. Slices past
            // the first few are left for the next call, as a short write.
            let mut all = [IoSlice::new(&[]); MAX_SLICES + 1];
            all[0] = IoSlice::new(&self.kept);
            let taken = bufs.len().min(MAX_SLICES);
            all[1..=taken].copy_from_slice(&bufs[..taken]);
            let written = ready!(send(&mut self.io, self.last, cx, &all[..=taken]))?;
            if written == 0 {
                return Poll::Ready(Ok(0));
            }
            if written < self.kept.len() {
                self.kept.drain(..written);
                continue;
            }
            let of_bufs = written - self.kept.len();
            self.kept.clear();
            if of_bufs > 0 || bufs.iter().all(|buf| buf.is_empty()) {
                return Poll::Ready(Ok(of_bufs));
            }
        }
        send(&mut self.io, self.last, cx, bufs)
    }
}

/// One write of `bufs` to `io`; `last` as in [`LateTickets::last_answer`].
fn send(
    io: &mut TcpStream,
    last: bool,
    cx: &mut Context<'_>,
    bufs: &[IoSlice<'_>],
) -> Poll<io::Result<usize>> {
    if last {
        return send_more(io, cx, bufs);
    }
    match bufs {
        // The usual case, one response's records in one slice: `send`
        // rather than `writev`, whose vectored path copies in and checks
        // an iovec array and runs the VFS write hooks (about 0.2 µs a
        // call on loopback here, 1 % of a keep-alive request).
        [one] => Pin::new(io).poll_write(cx, one),
        _ => Pin::new(io).poll_write_vectored(cx, bufs),
    }
}

/// `sendmsg` with `MSG_MORE`.
#[cfg(target_os = "linux")]
fn send_more(
    io: &TcpStream,
    cx: &mut Context<'_>,
    bufs: &[IoSlice<'_>],
) -> Poll<io::Result<usize>> {
    loop {
        ready!(io.poll_write_ready(cx))?;
        match io.try_io(Interest::WRITABLE, || {
            socket2::SockRef::from(io).send_vectored_with_flags(bufs, libc::MSG_MORE)
        }) {
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => continue,
            sent => return Poll::Ready(sent),
        }
    }
}

/// Other systems send at once; the FIN follows in a segment of its own.
#[cfg(not(target_os = "linux"))]
fn send_more(
    io: &mut TcpStream,
    cx: &mut Context<'_>,
    bufs: &[IoSlice<'_>],
) -> Poll<io::Result<usize>> {
    Pin::new(io).poll_write_vectored(cx, bufs)
}

/// Whether `bufs` hold only whole `application_data` records, and are small
/// enough to keep.
fn only_application_data(bufs: &[IoSlice<'_>]) -> bool {
    let total: usize = bufs.iter().map(|buf| buf.len()).sum();
    if total == 0 || total > MAX_KEPT {
        return false;
    }
    let mut at = 0;
    while at < total {
        let (Some(kind), Some(high), Some(low)) = (
            byte_at(bufs, at),
            byte_at(bufs, at + 3),
            byte_at(bufs, at + 4),
        ) else {
            return false;
        };
        if kind != APPLICATION_DATA {
            return false;
        }
        at += RECORD_HEADER + usize::from(u16::from_be_bytes([high, low]));
    }
    at == total
}

/// The byte at offset `at` of the concatenation of `bufs`.
fn byte_at(bufs: &[IoSlice<'_>], mut at: usize) -> Option<u8> {
    for buf in bufs {
        match buf.get(at) {
            Some(&byte) => return Some(byte),
            None => at -= buf.len(),
        }
    }
    None
}

impl AsyncRead for LateTickets {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.io).poll_read(cx, buf);
        // The handshake never waits for the client while something is kept:
        // should a flight the client needs ever look like a ticket (the rest
        // of a flight whose first write was cut short at a record boundary),
        // it leaves now instead of never.
        if polled.is_pending() && this.handshaking && !this.kept.is_empty() {
            if let Poll::Ready(Err(error)) = this.poll_write_behind_kept(cx, &[]) {
                return Poll::Ready(Err(error));
            }
        }
        polled
    }
}

impl AsyncWrite for LateTickets {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.handshaking && this.kept.len() < MAX_KEPT && only_application_data(bufs) {
            let before = this.kept.len();
            for buf in bufs {
                this.kept.extend_from_slice(buf);
            }
            return Poll::Ready(Ok(this.kept.len() - before));
        }
        this.poll_write_behind_kept(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    /// Does not send what is kept: hyper flushes after every read of a
    /// request, before there is a response to send it with.
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.kept.is_empty() {
            ready!(this.poll_write_behind_kept(cx, &[]))?;
        }
        Pin::new(&mut this.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    fn record(kind: u8, body: &[u8]) -> Vec<u8> {
        let mut record = vec![kind, 3, 3];
        record.extend_from_slice(&(body.len() as u16).to_be_bytes());
        record.extend_from_slice(body);
        record
    }

    async fn pair() -> (LateTickets, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap());
        let (client, accepted) = tokio::join!(client, listener.accept());
        (LateTickets::new(accepted.unwrap().0), client.unwrap())
    }

    /// Reads what the peer has sent within a short while.
    async fn received(client: &mut TcpStream) -> Vec<u8> {
        let mut got = Vec::new();
        let mut buf = [0u8; 1024];
        while let Ok(Ok(n)) =
            tokio::time::timeout(std::time::Duration::from_millis(100), client.read(&mut buf)).await
        {
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        got
    }

    #[test]
    fn only_whole_application_data_records_may_be_kept() {
        let ticket = record(APPLICATION_DATA, &[7; 100]);
        let hello = record(22, &[1; 40]);
        let ccs = record(20, &[1]);
        assert!(only_application_data(&[IoSlice::new(&ticket)]));
        // A record split across slices, and two records.
        let (a, b) = ticket.split_at(3);
        assert!(only_application_data(&[IoSlice::new(a), IoSlice::new(b)]));
        let two = [ticket.clone(), ticket.clone()].concat();
        assert!(only_application_data(&[IoSlice::new(&two)]));
        // ServerHello flights, TLS 1.2's change_cipher_spec, truncated records.
        let flight = [hello, ccs.clone(), ticket.clone()].concat();
        assert!(!only_application_data(&[IoSlice::new(&flight)]));
        let tls12 = [ccs, ticket.clone()].concat();
        assert!(!only_application_data(&[IoSlice::new(&tls12)]));
        assert!(!only_application_data(&[IoSlice::new(&ticket[..50])]));
        assert!(!only_application_data(&[IoSlice::new(&ticket[..3])]));
        assert!(!only_application_data(&[]));
        let huge = record(APPLICATION_DATA, &vec![0; MAX_KEPT]);
        assert!(!only_application_data(&[IoSlice::new(&huge)]));
    }

    #[tokio::test]
    async fn a_ticket_leaves_with_the_first_response_not_before() {
        let (mut server, mut client) = pair().await;
        let flight = record(22, b"server hello");
        let ticket = record(APPLICATION_DATA, b"ticket");
        let response = record(APPLICATION_DATA, b"response");
        server.write_all(&flight).await.unwrap();
        server.write_all(&ticket).await.unwrap();
        server.flush().await.unwrap();
        assert_eq!(
            received(&mut client).await,
            flight,
            "the ticket was sent alone"
        );
        server.handshake_done();
        server.flush().await.unwrap();
        assert_eq!(received(&mut client).await, b"", "a flush sent the ticket");
        server.write_all(&response).await.unwrap();
        assert_eq!(received(&mut client).await, [ticket, response].concat());
    }

    #[tokio::test]
    async fn what_was_kept_goes_out_at_shutdown_or_on_release() {
        let (mut server, mut client) = pair().await;
        let ticket = record(APPLICATION_DATA, b"ticket");
        server.write_all(&ticket).await.unwrap();
        server.handshake_done();
        server.shutdown().await.unwrap();
        assert_eq!(received(&mut client).await, ticket);

        let (mut server, mut client) = pair().await;
        let alert = record(APPLICATION_DATA, b"alert");
        server.write_all(&alert).await.unwrap();
        server.release();
        drop(server);
        assert_eq!(received(&mut client).await, alert);
    }

    #[tokio::test]
    async fn the_handshake_does_not_wait_for_the_client_while_keeping_a_write() {
        let (mut server, mut client) = pair().await;
        let rest_of_flight = record(APPLICATION_DATA, b"certificate, finished");
        server.write_all(&rest_of_flight).await.unwrap();
        // The handshake now reads the client's Finished, which has not come.
        let mut buf = [0u8; 16];
        let read =
            tokio::time::timeout(std::time::Duration::from_millis(50), server.read(&mut buf)).await;
        assert!(read.is_err(), "the client has sent nothing");
        assert_eq!(received(&mut client).await, rest_of_flight);
    }

    #[tokio::test]
    async fn after_the_handshake_every_write_goes_straight_out() {
        let (mut server, mut client) = pair().await;
        server.handshake_done();
        let data = record(APPLICATION_DATA, b"data");
        server.write_all(&data).await.unwrap();
        assert_eq!(received(&mut client).await, data);
    }

    /// The last answer leaves with the FIN, in one segment: until the
    /// shutdown the kernel holds it (nothing else would send a short
    /// segment for a few hundred milliseconds), and then it all arrives.
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn the_last_answer_is_held_for_the_fin_and_leaves_with_it() {
        let (mut server, mut client) = pair().await;
        server.io.set_nodelay(true).unwrap();
        let ticket = record(APPLICATION_DATA, b"ticket");
        let response = record(APPLICATION_DATA, b"response");
        server.write_all(&ticket).await.unwrap();
        server.handshake_done();
        server.last_answer();
        server.write_all(&response).await.unwrap();
        assert_eq!(received(&mut client).await, b"", "sent before the FIN");
        server.shutdown().await.unwrap();
        let mut rest = Vec::new();
        let read = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            client.read_to_end(&mut rest),
        );
        read.await.unwrap().unwrap();
        assert_eq!(rest, [ticket, response].concat());
    }

    /// A connection dropped without a shutdown still sends the last answer.
    #[tokio::test]
    async fn a_held_answer_is_sent_when_the_connection_is_dropped() {
        let (mut server, mut client) = pair().await;
        server.handshake_done();
        server.last_answer();
        let response = record(APPLICATION_DATA, b"response");
        server.write_all(&response).await.unwrap();
        drop(server);
        let mut rest = Vec::new();
        let read = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            client.read_to_end(&mut rest),
        );
        read.await.unwrap().unwrap();
        assert_eq!(rest, response);
    }
}
