//! The HTTP/2 server against a client speaking raw frames (for what a
//! well-behaved client never sends) and hyper's client (for flow control in
//! both directions), with a real HTTP/1.1 upstream on loopback.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use http_body_util::{BodyExt as _, Full};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _, DuplexStream};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use super::frame::{self, flag, kind, setting, Frame, Reason};
use super::hpack::{self, Decoder};
use super::*;

const LIMIT: Duration = Duration::from_secs(5);

/// An upstream that answers by path, and reports each `/hang` request it
/// receives and each one abandoned (its connection closed).
async fn upstream() -> (SocketAddr, mpsc::UnboundedReceiver<&'static str>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (events, seen) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let events = events.clone();
            let service = service_fn(move |request: http::Request<hyper::body::Incoming>| {
                let events = events.clone();
                async move {
                    let body = match request.uri().path() {
                        "/big" => Bytes::from(vec![b'x'; 1000]),
                        "/echo" => {
                            let body = request.into_body().collect().await?.to_bytes();
                            Bytes::from(body.len().to_string())
                        }
                        "/slow" => {
                            tokio::time::sleep(Duration::from_millis(300)).await;
                            Bytes::from_static(b"slow")
                        }
                        "/hang" => {
                            struct Abandoned(mpsc::UnboundedSender<&'static str>);
                            impl Drop for Abandoned {
                                fn drop(&mut self) {
                                    let _ = self.0.send("abandoned");
                                }
                            }
                            let _ = events.send("hang");
                            let _guard = Abandoned(events);
                            std::future::pending::<()>().await;
                            Bytes::new()
                        }
                        _ => Bytes::from_static(b"hello"),
                    };
                    Ok::<_, hyper::Error>(http::Response::new(Full::new(body)))
                }
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service),
            );
        }
    });
    (address, seen)
}

use crate::dataplane::tests::routing as plane;

/// Starts our server on one end of an in-memory connection.
fn start(plane: &Arc<DataPlane>) -> (DuplexStream, tokio::task::JoinHandle<Result<(), Ended>>) {
    let (client, server) = tokio::io::duplex(1 << 20);
    let info = crate::dataplane::tests::connection_info();
    let watch = info.idle.clone().unwrap();
    let task = tokio::spawn(serve(server, Arc::clone(plane), info, watch));
    (client, task)
}

/// A header block of these fields, in order.
fn block(fields: &[(&str, &str)]) -> BytesMut {
    let mut block = BytesMut::new();
    for (name, value) in fields {
        hpack::encode_field(name.as_bytes(), value.as_bytes(), &mut block);
    }
    block
}

/// A client that writes frames by hand.
struct Raw {
    io: DuplexStream,
    read: BytesMut,
    decoder: Decoder,
}

impl Raw {
    /// Connects with the preface and these SETTINGS.
    async fn connect(plane: &Arc<DataPlane>, settings: &[(u16, u32)]) -> Self {
        let (io, _task) = start(plane);
        let mut raw = Self {
            io,
            read: BytesMut::new(),
            decoder: Decoder::new(4096),
        };
        raw.io.write_all(frame::PREFACE).await.unwrap();
        let mut out = BytesMut::new();
        frame::settings(&mut out, settings);
        raw.io.write_all(&out).await.unwrap();
        raw
    }

    async fn send(&mut self, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
        let mut out = BytesMut::new();
        frame::head(&mut out, payload.len(), kind, flags, stream);
        out.put_slice(payload);
        self.io.write_all(&out).await.unwrap();
    }

    /// Sends HEADERS with these fields (pseudo-fields first, as given).
    async fn request(&mut self, stream: u32, fields: &[(&str, &str)], end_stream: bool) {
        let block = block(fields);
        let flags = flag::END_HEADERS | if end_stream { flag::END_STREAM } else { 0 };
        self.send(kind::HEADERS, flags, stream, &block).await;
    }

    async fn get(&mut self, stream: u32, path: &str) {
        let fields = [
            (":method", "GET"),
            (":scheme", "https"),
            (":authority", "app.test"),
            (":path", path),
        ];
        self.request(stream, &fields, true).await;
    }

    /// The next frame, or `None` when the server closed the connection.
    async fn next(&mut self) -> Option<Frame> {
        loop {
            if let Some(frame) = frame::read(&mut self.read, 1 << 24).unwrap() {
                return Some(frame);
            }
            let read = tokio::time::timeout(LIMIT, self.io.read_buf(&mut self.read))
                .await
                .expect("the server answers in time")
                .unwrap();
            if read == 0 {
                return None;
            }
        }
    }

    /// The next frame that is not connection upkeep (SETTINGS, their ACK,
    /// WINDOW_UPDATE on the connection).
    async fn next_for_streams(&mut self) -> Option<Frame> {
        loop {
            let frame = self.next().await?;
            let upkeep = frame.kind == kind::SETTINGS
                || (frame.kind == kind::WINDOW_UPDATE && frame.stream == 0);
            if !upkeep {
                return Some(frame);
            }
        }
    }

    /// A response's status and body, read up to its END_STREAM.
    async fn response(&mut self, stream: u32) -> (String, Vec<u8>) {
        let mut status = String::new();
        let mut body = Vec::new();
        loop {
            let frame = self.next_for_streams().await.expect("a response");
            assert_eq!(
                frame.stream, stream,
                "a frame of stream {stream}: {frame:?}"
            );
            match frame.kind {
                kind::HEADERS => {
                    for (name, value) in self.fields(&frame.payload) {
                        if name == ":status" {
                            status = value;
                        }
                    }
                }
                kind::DATA => body.extend_from_slice(&frame.payload),
                other => panic!("unexpected frame type {other}: {frame:?}"),
            }
            if frame.has(flag::END_STREAM) {
                return (status, body);
            }
        }
    }

    fn fields(&mut self, block: &Bytes) -> Vec<(String, String)> {
        let mut fields = Vec::new();
        self.decoder
            .decode(block, |name, value| {
                fields.push((
                    String::from_utf8(name.to_vec()).unwrap(),
                    String::from_utf8(value.to_vec()).unwrap(),
                ));
                Ok::<_, ()>(())
            })
            .unwrap();
        fields
    }

    /// Expects GOAWAY with `reason`, then the end of the connection.
    async fn goaway(&mut self, reason: Reason) {
        let frame = self.next_for_streams().await.expect("GOAWAY");
        assert_eq!(frame.kind, kind::GOAWAY, "{frame:?}");
        assert_eq!(frame::u32_payload(&frame.payload[4..]), Some(reason.0));
        assert!(self.next().await.is_none(), "closed after GOAWAY");
    }

    /// Expects RST_STREAM on `stream` with `reason`.
    async fn reset(&mut self, stream: u32, reason: Reason) {
        let frame = self.next_for_streams().await.expect("RST_STREAM");
        assert_eq!(
            (frame.kind, frame.stream),
            (kind::RST_STREAM, stream),
            "{frame:?}"
        );
        assert_eq!(frame::u32_payload(&frame.payload), Some(reason.0));
    }
}

#[tokio::test]
async fn requests_on_one_connection_are_answered_in_turn() {
    let (address, _) = upstream().await;
    let plane = plane(address);
    let mut client = Raw::connect(&plane, &[]).await;
    for stream in [1, 3, 5] {
        client.get(stream, "/").await;
        assert_eq!(
            client.response(stream).await,
            ("200".into(), b"hello".to_vec())
        );
    }
    // A host no router serves is answered here, on the same connection.
    let fields = [
        (":method", "GET"),
        (":scheme", "https"),
        (":authority", "other.test"),
        (":path", "/"),
    ];
    client.request(7, &fields, true).await;
    assert_eq!(client.response(7).await.0, "404");
}

#[tokio::test]
async fn an_answer_waits_for_the_clients_window() {
    let (address, _) = upstream().await;
    let plane = plane(address);
    let mut client = Raw::connect(&plane, &[(setting::INITIAL_WINDOW_SIZE, 100)]).await;
    client.get(1, "/big").await;
    let head = client.next_for_streams().await.unwrap();
    assert_eq!(head.kind, kind::HEADERS);
    let first = client.next_for_streams().await.unwrap();
    assert_eq!((first.kind, first.payload.len()), (kind::DATA, 100));
    assert!(!first.has(flag::END_STREAM));
    // Nothing more until the window opens.
    assert!(
        tokio::time::timeout(Duration::from_millis(200), client.next())
            .await
            .is_err(),
        "no DATA past the window"
    );
    client
        .send(kind::WINDOW_UPDATE, 0, 1, &900u32.to_be_bytes())
        .await;
    let rest = client.next_for_streams().await.unwrap();
    assert_eq!((rest.kind, rest.payload.len()), (kind::DATA, 900));
    assert!(rest.has(flag::END_STREAM));
}

#[tokio::test]
async fn a_request_body_larger_than_every_window_reaches_the_upstream_whole() {
    let (address, _) = upstream().await;
    let plane = plane(address);
    let (io, _task) = start(&plane);
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(io))
            .await
            .unwrap();
    tokio::spawn(connection);
    // Three times the stream's and the connection's window.
    let length = 3 << 20;
    for _ in 0..2 {
        let request = http::Request::post("https://app.test/echo")
            .body(Full::new(Bytes::from(vec![7u8; length])))
            .unwrap();
        let response = tokio::time::timeout(LIMIT, sender.send_request(request))
            .await
            .expect("answered in time")
            .unwrap();
        assert_eq!(response.status(), 200);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, length.to_string());
    }
}

#[tokio::test]
async fn a_reset_stream_drops_its_upstream_exchange() {
    let (address, mut upstream_saw) = upstream().await;
    let plane = plane(address);
    let mut client = Raw::connect(&plane, &[]).await;
    client.get(1, "/hang").await;
    assert_eq!(upstream_saw.recv().await, Some("hang"));
    client
        .send(kind::RST_STREAM, 0, 1, &Reason::CANCEL.0.to_be_bytes())
        .await;
    let abandoned = tokio::time::timeout(LIMIT, upstream_saw.recv()).await;
    assert_eq!(abandoned.unwrap(), Some("abandoned"));
    // The connection goes on.
    client.get(3, "/").await;
    assert_eq!(client.response(3).await.0, "200");
}

#[tokio::test]
async fn malformed_requests_are_refused_and_the_connection_goes_on() {
    let (address, _) = upstream().await;
    let plane = plane(address);
    let mut client = Raw::connect(&plane, &[]).await;
    let base = [
        (":method", "GET"),
        (":scheme", "https"),
        (":authority", "app.test"),
        (":path", "/"),
    ];
    let cases: [&[(&str, &str)]; 6] = [
        &[
            (":method", "GET"),
            (":scheme", "https"),
            (":authority", "app.test"),
        ],
        &[
            (":method", "GET"),
            (":path", "/"),
            (":authority", "app.test"),
        ],
        &[base[0], base[1], base[2], base[3], ("X-Upper", "1")],
        &[
            base[0],
            base[1],
            base[2],
            base[3],
            ("connection", "keep-alive"),
        ],
        &[base[0], base[1], base[2], base[3], ("te", "gzip")],
        &[base[0], base[1], ("x-early", "1"), base[2], base[3]],
    ];
    let mut stream = 1;
    for case in cases {
        client.request(stream, case, true).await;
        client.reset(stream, Reason::PROTOCOL_ERROR).await;
        stream += 2;
    }
    client.request(stream, &base, true).await;
    assert_eq!(client.response(stream).await.0, "200");
}

#[tokio::test]
async fn a_head_past_the_list_limit_is_answered_431() {
    let (address, _) = upstream().await;
    let plane = plane(address);
    let mut client = Raw::connect(&plane, &[]).await;
    let big = "v".repeat(15_000);
    let fields = [
        (":method", "GET"),
        (":scheme", "https"),
        (":authority", "app.test"),
        (":path", "/"),
        ("x-big", big.as_str()),
        ("x-big-2", big.as_str()),
    ];
    // Sent in a HEADERS and two CONTINUATION frames.
    let block = block(&fields);
    let (first, rest) = block.split_at(10_000);
    let (second, third) = rest.split_at(10_000);
    client.send(kind::HEADERS, flag::END_STREAM, 1, first).await;
    client.send(kind::CONTINUATION, 0, 1, second).await;
    client
        .send(kind::CONTINUATION, flag::END_HEADERS, 1, third)
        .await;
    assert_eq!(client.response(1).await.0, "431");
    client.get(3, "/").await;
    assert_eq!(client.response(3).await.0, "200");
}

#[tokio::test]
async fn settings_are_acknowledged_and_pings_answered() {
    let (address, _) = upstream().await;
    let plane = plane(address);
    let mut client = Raw::connect(&plane, &[(setting::MAX_FRAME_SIZE, 20_000)]).await;
    let ours = client.next().await.unwrap();
    assert_eq!((ours.kind, ours.flags), (kind::SETTINGS, 0));
    client.send(kind::PING, 0, 0, b"12345678").await;
    let mut acked = false;
    loop {
        let frame = client.next().await.unwrap();
        match (frame.kind, frame.flags) {
            (kind::SETTINGS, flag::ACK) => acked = true,
            (kind::PING, flag::ACK) => {
                assert_eq!(&frame.payload[..], b"12345678");
                break;
            }
            _ => {}
        }
    }
    assert!(acked, "our SETTINGS ACK before the PING's");
}

/// Each case: what the client sends after its SETTINGS, and the GOAWAY code.
#[tokio::test]
async fn protocol_errors_end_the_connection_with_goaway() {
    let (address, _) = upstream().await;
    let plane = plane(address);
    let bad_hpack = [0x80u8]; // index 0 (RFC 7541 §6.1)
    let cases: [(u8, u8, u32, &[u8], Reason); 6] = [
        (
            kind::HEADERS,
            flag::END_HEADERS,
            2,
            b"",
            Reason::PROTOCOL_ERROR,
        ),
        (kind::DATA, 0, 0, b"x", Reason::PROTOCOL_ERROR),
        (
            kind::HEADERS,
            flag::END_HEADERS,
            1,
            &bad_hpack,
            Reason::COMPRESSION_ERROR,
        ),
        (
            kind::WINDOW_UPDATE,
            0,
            0,
            &[0, 0, 0, 0],
            Reason::PROTOCOL_ERROR,
        ),
        (kind::PING, 0, 0, b"short", Reason::FRAME_SIZE_ERROR),
        (
            kind::CONTINUATION,
            flag::END_HEADERS,
            1,
            b"",
            Reason::PROTOCOL_ERROR,
        ),
    ];
    for (kind, flags, stream, payload, reason) in cases {
        let mut client = Raw::connect(&plane, &[]).await;
        client.send(kind, flags, stream, payload).await;
        client.goaway(reason).await;
    }
    // A frame larger than our SETTINGS_MAX_FRAME_SIZE.
    let mut client = Raw::connect(&plane, &[]).await;
    client.send(kind::DATA, 0, 1, &vec![0; 20_000]).await;
    client.goaway(Reason::FRAME_SIZE_ERROR).await;
    // The preface not followed by SETTINGS.
    let (mut io, _task) = start(&plane);
    io.write_all(frame::PREFACE).await.unwrap();
    let mut client = Raw {
        io,
        read: BytesMut::new(),
        decoder: Decoder::new(4096),
    };
    client.send(kind::PING, 0, 0, b"12345678").await;
    client.goaway(Reason::PROTOCOL_ERROR).await;
}

#[tokio::test]
async fn streams_past_the_concurrency_limit_are_refused() {
    let (address, mut upstream_saw) = upstream().await;
    let plane = plane(address);
    let mut client = Raw::connect(&plane, &[]).await;
    let limit = 200;
    for i in 0..limit {
        client.get(2 * i + 1, "/hang").await;
    }
    for _ in 0..limit {
        assert_eq!(upstream_saw.recv().await, Some("hang"));
    }
    client.get(2 * limit + 1, "/").await;
    client.reset(2 * limit + 1, Reason::REFUSED_STREAM).await;
}

#[tokio::test]
async fn rapid_resets_end_the_connection() {
    let (address, _) = upstream().await;
    let plane = plane(address);
    let mut client = Raw::connect(&plane, &[]).await;
    // Written at once: the server closes the connection part-way.
    let mut burst = BytesMut::new();
    for stream in (1..600).step_by(2) {
        let block = block(&[
            (":method", "GET"),
            (":scheme", "https"),
            (":authority", "app.test"),
            (":path", "/hang"),
        ]);
        let flags = flag::END_HEADERS | flag::END_STREAM;
        frame::head(&mut burst, block.len(), kind::HEADERS, flags, stream);
        burst.put_slice(&block);
        frame::rst_stream(&mut burst, stream, Reason::CANCEL);
    }
    client.io.write_all(&burst).await.unwrap();
    let goaway = client.next_for_streams().await.unwrap();
    assert_eq!(goaway.kind, kind::GOAWAY, "{goaway:?}");
    assert_eq!(
        frame::u32_payload(&goaway.payload[4..]),
        Some(Reason::ENHANCE_YOUR_CALM.0)
    );
}

#[tokio::test]
async fn a_drain_sends_goaway_and_answers_the_open_streams() {
    let (address, _) = upstream().await;
    let plane = plane(address);
    let mut client = Raw::connect(&plane, &[]).await;
    client.get(1, "/slow").await;
    // Let the server take the request before the drain starts.
    tokio::time::sleep(Duration::from_millis(50)).await;
    crate::idle_watch::drain();
    let goaway = client.next_for_streams().await.unwrap();
    assert_eq!(goaway.kind, kind::GOAWAY);
    assert_eq!(
        frame::u32_payload(&goaway.payload[..4]),
        Some(1),
        "last stream"
    );
    assert_eq!(
        frame::u32_payload(&goaway.payload[4..]),
        Some(Reason::NO_ERROR.0)
    );
    assert_eq!(client.response(1).await, ("200".into(), b"slow".to_vec()));
    assert!(client.next().await.is_none(), "closed once answered");
}

#[tokio::test]
async fn upstream_fields_reach_the_client_lower_cased_without_hop_by_hop_ones() {
    // An upstream writing its head by hand, in its own case.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut seen = Vec::new();
        while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
            let mut buf = [0u8; 1024];
            let n = stream.read(&mut buf).await.unwrap();
            seen.extend_from_slice(&buf[..n]);
        }
        stream
            .write_all(
                b"HTTP/1.1 200 OK\r\nX-Mixed-Case: v\r\nConnection: keep-alive\r\n\
                  Keep-Alive: timeout=5\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
            )
            .await
            .unwrap();
        let mut rest = [0u8; 1];
        let _ = stream.read(&mut rest).await;
    });
    let plane = plane(address);
    let mut client = Raw::connect(&plane, &[]).await;
    client.get(1, "/").await;
    let head = client.next_for_streams().await.unwrap();
    assert_eq!(head.kind, kind::HEADERS);
    let fields = client.fields(&head.payload);
    let names: Vec<&str> = fields.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(fields[0], (":status".into(), "200".into()));
    assert!(
        fields.contains(&("x-mixed-case".into(), "v".into())),
        "{fields:?}"
    );
    for hop in ["connection", "keep-alive", "transfer-encoding"] {
        assert!(!names.contains(&hop), "{hop} passed on: {fields:?}");
    }
    // The upstream sent no Date: one is added (RFC 9110 §6.6.1).
    let date = &fields.iter().find(|(name, _)| name == "date").unwrap().1;
    httpdate::parse_http_date(date).unwrap();
    let (_, body) = client.response(1).await;
    assert_eq!(body, b"ok");

    // A Content-Length is passed on, and a Date of the upstream's kept.
    let (address, _) = upstream().await;
    let plane = self::plane(address);
    let mut client = Raw::connect(&plane, &[]).await;
    client.get(1, "/").await;
    let head = client.next_for_streams().await.unwrap();
    let fields = client.fields(&head.payload);
    assert!(
        fields.contains(&("content-length".into(), "5".into())),
        "{fields:?}"
    );
    let dates = fields.iter().filter(|(name, _)| name == "date").count();
    assert_eq!(dates, 1, "{fields:?}");
}

#[tokio::test]
async fn padding_is_given_back_to_both_windows() {
    let (address, _) = upstream().await;
    let plane = plane(address);
    let mut client = Raw::connect(&plane, &[]).await;
    // Each frame: the pad length, 100 bytes of data, 200 of padding; 301
    // bytes of window. 5,000 of them need 1.5 MB of window: more than the
    // server grants at first on the stream and on the connection, so the
    // server must give the padding back too.
    let frames = 5_000u32;
    let length = (frames * 100).to_string();
    let fields = [
        (":method", "POST"),
        (":scheme", "https"),
        (":authority", "app.test"),
        (":path", "/echo"),
        ("content-length", length.as_str()),
    ];
    client.request(1, &fields, false).await;
    let mut payload = vec![200u8];
    payload.extend_from_slice(&[b'p'; 100]);
    payload.extend_from_slice(&[0; 200]);
    let cost = payload.len() as i64;
    let (mut connection, mut stream) = (i64::from(frame::DEFAULT_WINDOW), 0i64);
    let mut settings_seen = false;
    for sent in 0..frames {
        // Wait for window, counting what the server grants.
        while !settings_seen || connection < cost || stream < cost {
            let frame = client.next().await.expect("window");
            match (frame.kind, frame.stream) {
                (kind::SETTINGS, 0) if !frame.has(flag::ACK) => {
                    settings_seen = true;
                    for (id, value) in frame::settings_values(&frame.payload) {
                        if id == setting::INITIAL_WINDOW_SIZE {
                            stream += i64::from(value);
                        }
                    }
                }
                (kind::WINDOW_UPDATE, 0) => {
                    connection += i64::from(frame::u32_payload(&frame.payload).unwrap())
                }
                (kind::WINDOW_UPDATE, 1) => {
                    stream += i64::from(frame::u32_payload(&frame.payload).unwrap())
                }
                (kind::SETTINGS, 0) => {}
                _ => panic!("unexpected frame before the answer: {frame:?}"),
            }
        }
        let last = sent + 1 == frames;
        let flags = flag::PADDED | if last { flag::END_STREAM } else { 0 };
        client.send(kind::DATA, flags, 1, &payload).await;
        connection -= cost;
        stream -= cost;
    }
    loop {
        let frame = client.next_for_streams().await.expect("the answer");
        if frame.kind == kind::WINDOW_UPDATE {
            continue;
        }
        assert_eq!(frame.kind, kind::HEADERS, "{frame:?}");
        break;
    }
    let data = client.next_for_streams().await.unwrap();
    assert_eq!(&data.payload[..], length.as_bytes());
}
