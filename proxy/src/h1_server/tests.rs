use std::net::SocketAddr;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use super::*;

const LIMIT: Duration = Duration::from_secs(5);

use crate::dataplane::tests::routing as plane;

use crate::dataplane::tests::connection_info as info;

/// An upstream that answers by path, one canned answer per request, and
/// reports each connection it sees closed by the proxy.
async fn upstream() -> (SocketAddr, mpsc::UnboundedReceiver<()>) {
    let (address, closes, _heads) = recording_upstream().await;
    (address, closes)
}

/// [`upstream`], also reporting each request head it receives.
async fn recording_upstream() -> (
    SocketAddr,
    mpsc::UnboundedReceiver<()>,
    mpsc::UnboundedReceiver<String>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (closed, closes) = mpsc::unbounded_channel();
    let (received, heads) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let (mut stream, _) = listener.accept().await.unwrap();
            let closed = closed.clone();
            let received = received.clone();
            tokio::spawn(async move {
                let mut seen = Vec::new();
                let mut buf = [0u8; 4096];
                loop {
                    let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") else {
                        match stream.read(&mut buf).await {
                            Ok(0) | Err(_) => {
                                let _ = closed.send(());
                                return;
                            }
                            Ok(n) => seen.extend_from_slice(&buf[..n]),
                        }
                        continue;
                    };
                    let head = String::from_utf8_lossy(&seen[..end]).into_owned();
                    seen.drain(..end + 4);
                    let _ = received.send(head.clone());
                    let target = head.split(' ').nth(1).unwrap_or_default();
                    let path = target.split('?').next().unwrap_or_default().to_owned();
                    let answer: &[u8] = match path.as_str() {
                        "/length" => b"HTTP/1.1 200 OK\r\nX-Shape: length\r\nContent-Length: 5\r\n\r\nhello",
                        "/hop-by-hop" => b"HTTP/1.1 200 OK\r\nconnection: keep-alive\r\nKeep-Alive: timeout=5\r\nproxy-connection: x\r\nUpgrade: h2c\r\nTrailer: x-sum\r\nte: trailers\r\nx-kept: 1\r\ncontent-length: 2\r\n\r\nok",
                        "/named" => b"HTTP/1.1 200 OK\r\nx-hop: 1\r\nConnection: x-hop, keep-alive\r\nx-kept: 1\r\ncontent-length: 2\r\n\r\nok",
                        "/chunked" => b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nhe\r\n3\r\nllo\r\n0\r\n\r\n",
                        "/until-close" => b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nhello",
                        "/no-content" => b"HTTP/1.1 204 No Content\r\n\r\n",
                        "/not-modified" => b"HTTP/1.1 304 Not Modified\r\ncontent-length: 5\r\netag: \"a\"\r\n\r\n",
                        "/dated" => b"HTTP/1.1 200 OK\r\ndate: Sun, 06 Nov 1994 08:49:37 GMT\r\ncontent-length: 0\r\n\r\n",
                        // Never answers: the client gives up first.
                        _ => {
                            let _ = stream.read(&mut buf).await;
                            let _ = closed.send(());
                            return;
                        }
                    };
                    let head_only = head.starts_with("HEAD ");
                    let answer = if head_only {
                        let end = answer.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
                        &answer[..end + 4]
                    } else {
                        answer
                    };
                    stream.write_all(answer).await.unwrap();
                    if path == "/until-close" {
                        return;
                    }
                }
            });
        }
    });
    (address, closes, heads)
}

/// Which server answers in a test.
#[derive(Debug, Clone, Copy)]
enum Server {
    Ours,
    Hyper,
}

/// A client connection to a server answering with `handle`.
fn connect(
    server: Server,
    plane: &Arc<DataPlane>,
) -> (DuplexStream, tokio::task::JoinHandle<Option<Served>>) {
    let (client, mut io) = tokio::io::duplex(64 * 1024);
    let plane = Arc::clone(plane);
    let info = info();
    let task = tokio::spawn(async move {
        match server {
            Server::Ours => {
                let watch = info.idle.clone().unwrap();
                crate::idle_watch::run(&watch, std::pin::pin!(serve(&mut io, &plane, &info))).await
            }
            Server::Hyper => {
                let service = service_fn(move |request| {
                    handle(Arc::clone(&plane), Arc::clone(&info), request)
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .serve_connection(TokioIo::new(io), service)
                    .await;
                None
            }
        }
    });
    (client, task)
}

/// One answer: its head's lines (status line first, the rest with their
/// names in lower case and sorted, `date` checked and left out) and its
/// body, read by its framing.
#[derive(Debug, PartialEq, Eq)]
struct Answer {
    status: String,
    fields: Vec<String>,
    body: Vec<u8>,
}

impl Answer {
    fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(": "))
    }
}

async fn read_answer(
    stream: &mut (impl AsyncRead + Unpin),
    head_only: bool,
    buf: &mut Vec<u8>,
) -> Answer {
    let end = loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break end;
        }
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout(LIMIT, stream.read(&mut chunk))
            .await
            .unwrap()
            .unwrap();
        assert!(
            n > 0,
            "closed before an answer: {:?}",
            String::from_utf8_lossy(buf)
        );
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8(buf[..end].to_vec()).unwrap();
    buf.drain(..end + 4);
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap().to_owned();
    let mut fields: Vec<String> = Vec::new();
    let mut dates = 0;
    for line in lines {
        let (name, value) = line.split_once(": ").unwrap();
        let name = name.to_ascii_lowercase();
        if name == "date" {
            httpdate::parse_http_date(value).unwrap();
            dates += 1;
        } else {
            fields.push(format!("{name}: {value}"));
        }
    }
    assert_eq!(dates, 1, "one date in {head}");
    fields.sort();
    let mut answer = Answer {
        status,
        fields,
        body: Vec::new(),
    };
    let code = answer.status.split(' ').nth(1).unwrap().to_owned();
    if head_only || code == "204" || code == "304" {
        return answer;
    }
    if let Some(length) = answer.field("content-length") {
        let length: usize = length.parse().unwrap();
        while buf.len() < length {
            assert!(more(stream, buf).await > 0, "body cut short");
        }
        answer.body = buf.drain(..length).collect();
    } else if answer.field("transfer-encoding") == Some("chunked") {
        loop {
            let Some(line) = buf.windows(2).position(|w| w == b"\r\n") else {
                assert!(more(stream, buf).await > 0, "chunk cut short");
                continue;
            };
            let size =
                usize::from_str_radix(std::str::from_utf8(&buf[..line]).unwrap(), 16).unwrap();
            while buf.len() < line + 2 + size + 2 {
                assert!(more(stream, buf).await > 0, "chunk cut short");
            }
            answer
                .body
                .extend_from_slice(&buf[line + 2..line + 2 + size]);
            buf.drain(..line + 2 + size + 2);
            if size == 0 {
                break;
            }
        }
    } else {
        while more(stream, buf).await > 0 {}
        answer.body = std::mem::take(buf);
    }
    answer
}

/// Reads what has arrived into `buf`; 0 at the end of the stream.
async fn more(stream: &mut (impl AsyncRead + Unpin), buf: &mut Vec<u8>) -> usize {
    let mut chunk = [0u8; 4096];
    let n = tokio::time::timeout(LIMIT, stream.read(&mut chunk))
        .await
        .unwrap()
        .unwrap_or(0);
    buf.extend_from_slice(&chunk[..n]);
    n
}

/// Whether the server closed the connection after its answer.
async fn closed(stream: &mut DuplexStream, buf: &[u8]) -> bool {
    if !buf.is_empty() {
        return false;
    }
    let mut byte = [0u8; 1];
    matches!(
        tokio::time::timeout(Duration::from_millis(200), stream.read(&mut byte)).await,
        Ok(Ok(0) | Err(_))
    )
}

/// What a client sees for `request`: the answer, and whether the connection
/// then stays open for another request.
async fn exchange(server: Server, plane: &Arc<DataPlane>, request: &str) -> (Answer, bool) {
    let (mut client, _task) = connect(server, plane);
    client.write_all(request.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let answer = read_answer(&mut client, request.starts_with("HEAD "), &mut buf).await;
    let open = if closed(&mut client, &buf).await {
        false
    } else {
        client
            .write_all(b"GET /length HTTP/1.1\r\nhost: app.test\r\n\r\n")
            .await
            .unwrap();
        read_answer(&mut client, false, &mut buf).await.status == "HTTP/1.1 200 OK"
    };
    (answer, open)
}

#[tokio::test]
async fn plain_requests_get_the_answer_hyper_would_give() {
    let (upstream, _closes) = upstream().await;
    let plane = plane(upstream);
    let requests = [
        "GET /length HTTP/1.1\r\nhost: app.test\r\n\r\n",
        "GET /chunked HTTP/1.1\r\nhost: app.test\r\n\r\n",
        "GET /hop-by-hop HTTP/1.1\r\nhost: app.test\r\n\r\n",
        "GET /named HTTP/1.1\r\nhost: app.test\r\n\r\n",
        "GET /until-close HTTP/1.1\r\nhost: app.test\r\n\r\n",
        "HEAD /length HTTP/1.1\r\nhost: app.test\r\n\r\n",
        "GET /no-content HTTP/1.1\r\nhost: app.test\r\n\r\n",
        "GET /not-modified HTTP/1.1\r\nhost: app.test\r\n\r\n",
        "HEAD /not-modified HTTP/1.1\r\nhost: app.test\r\n\r\n",
        "GET /dated HTTP/1.1\r\nhost: app.test\r\n\r\n",
        "GET /length HTTP/1.1\r\nhost: app.test\r\nconnection: close\r\n\r\n",
        "GET /length HTTP/1.1\r\nhost: app.test\r\ncontent-length: 0\r\n\r\n",
        "GET /length HTTP/1.0\r\nhost: app.test\r\n\r\n",
        "GET /length HTTP/1.0\r\nhost: app.test\r\nconnection: keep-alive\r\n\r\n",
        "GET /chunked HTTP/1.0\r\nhost: app.test\r\n\r\n",
        "GET / HTTP/1.1\r\nhost: nobody.test\r\n\r\n",
        "HEAD / HTTP/1.1\r\nhost: nobody.test\r\n\r\n",
        "GET / HTTP/1.1\r\n\r\n",
    ];
    for request in requests {
        let ours = exchange(Server::Ours, &plane, request).await;
        let hyper = exchange(Server::Hyper, &plane, request).await;
        assert_eq!(ours, hyper, "{request:?}");
    }

    // The one difference: an HTTP/1.0 client that asks for keep-alive gets
    // a body of unknown length delimited by the close, and hyper still
    // answers `Connection: keep-alive` before closing.
    let request = "GET /chunked HTTP/1.0\r\nhost: app.test\r\nconnection: keep-alive\r\n\r\n";
    let (ours, open) = exchange(Server::Ours, &plane, request).await;
    let (mut hyper, _) = exchange(Server::Hyper, &plane, request).await;
    assert!(!open);
    assert_eq!(ours.field("connection"), None);
    hyper
        .fields
        .retain(|field| field != "connection: keep-alive");
    assert_eq!(ours, hyper);
}

#[tokio::test]
async fn answers_to_pipelined_requests_come_back_in_order() {
    let (upstream, _closes) = upstream().await;
    let plane = plane(upstream);
    let (mut client, _task) = connect(Server::Ours, &plane);
    client
        .write_all(
            b"GET /chunked HTTP/1.1\r\nhost: app.test\r\n\r\n\
              HEAD /length HTTP/1.1\r\nhost: app.test\r\n\r\n\
              GET /length HTTP/1.1\r\nhost: app.test\r\nconnection: close\r\n\r\n",
        )
        .await
        .unwrap();
    let mut buf = Vec::new();
    let first = read_answer(&mut client, false, &mut buf).await;
    assert_eq!(first.body, b"hello");
    assert_eq!(first.field("transfer-encoding"), Some("chunked"));
    let second = read_answer(&mut client, true, &mut buf).await;
    assert_eq!(second.field("content-length"), Some("5"));
    assert!(second.body.is_empty());
    let third = read_answer(&mut client, false, &mut buf).await;
    assert_eq!(third.field("x-shape"), Some("length"));
    assert_eq!(third.field("connection"), Some("close"));
    assert!(closed(&mut client, &buf).await);
}

#[tokio::test]
async fn any_other_request_goes_to_hyper_with_every_byte_unread() {
    let plane = crate::dataplane::tests::plane();
    let others = [
        "POST / HTTP/1.1\r\nhost: a.test\r\ncontent-length: 5\r\n\r\nhello",
        "POST / HTTP/1.1\r\nhost: a.test\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n",
        // The shapes of request smuggling: never read here.
        "POST / HTTP/1.1\r\nhost: a.test\r\ncontent-length: 0\r\ntransfer-encoding: chunked\r\n\r\n",
        "GET / HTTP/1.1\r\nhost: a.test\r\ncontent-length: 0\r\ncontent-length: 0\r\n\r\n",
        "GET / HTTP/1.1\r\nhost: a.test\r\nContent-Length: 7\r\n\r\n",
        "GET / HTTP/1.1\r\nhost: a.test\r\nTransfer-Encoding: identity\r\n\r\n",
        "GET / HTTP/1.1\r\nhost: a.test\r\nx-folded: a\r\n b\r\n\r\n",
        "GET / HTTP/1.1\r\nhost : a.test\r\n\r\n",
        "PUT / HTTP/1.1\r\nhost: a.test\r\nexpect: 100-continue\r\ncontent-length: 1\r\n\r\n",
        "GET /chat HTTP/1.1\r\nhost: a.test\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\n",
        "CONNECT a.test:443 HTTP/1.1\r\nhost: a.test:443\r\n\r\n",
        "GET http://a.test/ HTTP/1.1\r\nhost: a.test\r\n\r\n",
        "OPTIONS * HTTP/1.1\r\nhost: a.test\r\n\r\n",
        "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        "GET / HTTP/1.1\r\nhost: a.test\r\nx-bad: \x01\r\n\r\n",
        "GET /\x7f HTTP/1.1\r\nhost: a.test\r\n\r\n",
        "GET / HTTP/1.1\r\nhost: a.test\r\n",
    ];
    for other in others {
        // After a plain request, on the same connection.
        let (mut client, task) = connect(Server::Ours, &plane);
        let sent = format!("GET / HTTP/1.1\r\nhost: a.test\r\n\r\n{other}");
        client.write_all(sent.as_bytes()).await.unwrap();
        if other.ends_with("a.test\r\n") {
            // An unfinished head: too large for this loop once it grows.
            client
                .write_all(format!("x-pad: {}\r\n", "a".repeat(MAX_HEAD)).as_bytes())
                .await
                .unwrap();
        }
        let mut buf = Vec::new();
        let answer = read_answer(&mut client, false, &mut buf).await;
        assert_eq!(answer.status, "HTTP/1.1 404 Not Found", "{other:?}");
        let served = tokio::time::timeout(LIMIT, task).await.unwrap().unwrap();
        let Some(Served::ToHyper(early)) = served else {
            panic!("{other:?} was not handed over: {served:?}");
        };
        assert!(
            early.starts_with(other.as_bytes()),
            "{other:?} handed over as {early:?}"
        );
    }
}

#[tokio::test]
async fn a_client_that_leaves_before_its_answer_ends_the_upstream_exchange() {
    let (upstream, mut closes) = upstream().await;
    let plane = plane(upstream);
    let (mut client, task) = connect(Server::Ours, &plane);
    client
        .write_all(b"GET /never HTTP/1.1\r\nhost: app.test\r\n\r\n")
        .await
        .unwrap();
    // The request reaches the upstream; then the client goes.
    tokio::time::sleep(Duration::from_millis(100)).await;
    drop(client);
    let served = tokio::time::timeout(LIMIT, task).await.unwrap().unwrap();
    assert!(matches!(served, Some(Served::Done)), "{served:?}");
    tokio::time::timeout(LIMIT, closes.recv())
        .await
        .expect("the upstream connection is closed with the client's")
        .unwrap();
}

#[tokio::test]
async fn a_draining_worker_answers_with_close_and_closes_idle_connections() {
    let (upstream, _closes) = upstream().await;
    let plane = plane(upstream);
    let (mut idle, idle_task) = connect(Server::Ours, &plane);
    let (mut busy, busy_task) = connect(Server::Ours, &plane);
    let mut buf = Vec::new();
    idle.write_all(b"GET /length HTTP/1.1\r\nhost: app.test\r\n\r\n")
        .await
        .unwrap();
    let answer = read_answer(&mut idle, false, &mut buf).await;
    assert_eq!(
        answer.field("connection"),
        None,
        "kept open before the drain"
    );

    crate::idle_watch::drain();
    let served = tokio::time::timeout(LIMIT, idle_task)
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(served, Some(Served::Done)), "{served:?}");
    assert!(
        closed(&mut idle, &buf).await,
        "the idle connection is closed at once"
    );

    // A connection's first request is still answered, with a close.
    busy.write_all(b"GET /length HTTP/1.1\r\nhost: app.test\r\n\r\n")
        .await
        .unwrap();
    let answer = read_answer(&mut busy, false, &mut buf).await;
    assert_eq!(answer.body, b"hello");
    assert_eq!(answer.field("connection"), Some("close"));
    assert!(closed(&mut busy, &buf).await);
    tokio::time::timeout(LIMIT, busy_task)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn a_client_asked_to_move_gets_close_on_its_next_answer_only() {
    let (upstream, _closes) = upstream().await;
    let plane = plane(upstream);
    let (mut moved, _moved_task) = connect(Server::Ours, &plane);
    let (mut stays, _stays_task) = connect(Server::Ours, &plane);
    let request = b"GET /length HTTP/1.1\r\nhost: app.test\r\n\r\n";
    let mut buf = Vec::new();
    moved.write_all(request).await.unwrap();
    let answer = read_answer(&mut moved, false, &mut buf).await;
    assert_eq!(answer.field("connection"), None);
    assert_eq!(crate::shedding::kept(), 2);

    // One answer on this worker is to move its client.
    crate::shedding::set_to_move(1);
    moved.write_all(request).await.unwrap();
    let answer = read_answer(&mut moved, false, &mut buf).await;
    assert_eq!(answer.body, b"hello");
    assert_eq!(answer.field("connection"), Some("close"));
    assert!(closed(&mut moved, &buf).await, "the client reconnects");

    // The next client's answers keep its connection open.
    for _ in 0..2 {
        stays.write_all(request).await.unwrap();
        let answer = read_answer(&mut stays, false, &mut buf).await;
        assert_eq!(answer.field("connection"), None);
    }
    assert!(!closed(&mut stays, &buf).await);
    assert_eq!(crate::shedding::kept(), 1, "the moved client's loop ended");
}

/// A request head as an upstream received it: the request line, then the
/// fields with names in lower case, sorted.
fn normalized(head: &str) -> Vec<String> {
    let mut lines = head.split("\r\n");
    let mut normal = vec![lines.next().unwrap().to_owned()];
    let mut fields: Vec<String> = lines
        .map(|line| {
            let (name, value) = line.split_once(": ").unwrap();
            format!("{}: {value}", name.to_ascii_lowercase())
        })
        .collect();
    fields.sort();
    normal.extend(fields);
    normal
}

#[tokio::test]
async fn plain_requests_reach_the_upstream_as_they_do_through_hyper() {
    let (upstream, _closes, mut heads) = recording_upstream().await;
    let plane = plane(upstream);
    let requests = [
        "GET /length?q=1 HTTP/1.1\r\nHost: App.Test\r\nAccept: */*\r\nCookie: a=1\r\naccept: text/plain\r\n\r\n",
        "GET /length HTTP/1.1\r\nhost: app.test\r\nConnection: keep-alive, X-Secret\r\nX-Secret: 1\r\n\
         Keep-Alive: timeout=5\r\nTE: trailers\r\nProxy-Authorization: Basic eA==\r\nProxy-Connection: x\r\n\
         Trailer: x\r\nx-kept: yes\r\n\r\n",
        "GET /length HTTP/1.1\r\nhost: app.test\r\nX-Forwarded-For: 6.6.6.6\r\nx-forwarded-proto: http\r\n\
         X-Forwarded-Host: evil.test\r\nX-Portcullis-Tenant: forged\r\nx-portcullis-client-subject: CN=forged\r\n\r\n",
        "HEAD /length HTTP/1.1\r\nhost: app.test:443\r\ncontent-length: 0\r\nConnection: close\r\n\r\n",
        "GET /length HTTP/1.0\r\nhost: app.test\r\nconnection: Keep-Alive\r\nx-value:  spaced \t\r\n\r\n",
        "GET /length HTTP/1.1\r\nhost: app.test\r\nConnection: x-bin\r\nx-bin: \u{ff}\u{fe}\r\nx-other: \u{c3}\u{a9}\r\n\r\n",
    ];
    for request in requests {
        let mut received = Vec::new();
        for server in [Server::Ours, Server::Hyper] {
            let (mut client, _task) = connect(server, &plane);
            // Written as bytes: some fields are not UTF-8.
            let bytes: Vec<u8> = request.chars().map(|c| c as u32 as u8).collect();
            client.write_all(&bytes).await.unwrap();
            read_answer(&mut client, request.starts_with("HEAD "), &mut Vec::new()).await;
            let head = tokio::time::timeout(LIMIT, heads.recv())
                .await
                .unwrap()
                .unwrap();
            received.push(normalized(&head));
        }
        assert_eq!(received[0], received[1], "{request:?}");
        let fields = received[0].join("\n");
        for absent in [
            "x-secret",
            "keep-alive",
            "6.6.6.6",
            "forged",
            "evil.test",
            "proxy-",
            "te:",
            "trailer",
        ] {
            assert!(
                !fields.contains(absent),
                "{absent} reached the upstream: {fields}"
            );
        }
    }
}

#[tokio::test]
async fn answers_ready_in_the_same_turn_all_reach_their_clients() {
    let (upstream, _closes) = upstream().await;
    let plane = plane(upstream);
    // Every connection on this test's single thread, as on one worker, with
    // its request sent before any is read: their answers are in progress
    // together and wait for each other's turn before they leave.
    let mut clients: Vec<_> = (0..8).map(|_| connect(Server::Ours, &plane)).collect();
    for round in 0..3 {
        for (client, _task) in &mut clients {
            client
                .write_all(b"GET /length HTTP/1.1\r\nhost: app.test\r\n\r\n")
                .await
                .unwrap();
        }
        for (index, (client, _task)) in clients.iter_mut().enumerate() {
            let mut buf = Vec::new();
            let answer = read_answer(client, false, &mut buf).await;
            assert_eq!(
                (answer.status.as_str(), answer.body.as_slice()),
                ("HTTP/1.1 200 OK", b"hello".as_slice()),
                "connection {index}, round {round}"
            );
            assert!(buf.is_empty(), "one answer per request");
        }
    }
}
