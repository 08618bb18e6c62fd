//! The per-request header work between client and upstream: the upstream's
//! request head written from the client's, hop-by-hop fields out and
//! `X-Forwarded-*` and `Host` in (request); the upstream's response head
//! parsed, hop-by-hop fields dropped on the way (response).

// criterion_group! expands to an undocumented `pub fn`.
#![allow(missing_docs)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use http::header::HeaderValue;
use portcullis_proxy::bench_support;

fn request(pairs: &[(&str, &str)]) -> http::request::Parts {
    let mut builder = http::Request::get("/api/v1/items?page=2");
    for (name, value) in pairs {
        builder = builder.header(*name, *value);
    }
    builder.body(()).expect("a valid request").into_parts().0
}

fn rewrite(c: &mut Criterion) {
    let mut group = c.benchmark_group("header_rewrite");
    // What wrk sends, and what a browser sends over HTTP/1.1.
    let minimal = request(&[("host", "localhost:8443")]);
    let browser = request(&[
        ("host", "app.example.com"),
        (
            "user-agent",
            "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
        ),
        (
            "accept",
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
        ),
        ("accept-language", "en-US,en;q=0.5"),
        ("accept-encoding", "gzip, deflate, br, zstd"),
        ("connection", "keep-alive"),
        ("cookie", "session=0123456789abcdef0123456789abcdef"),
        ("upgrade-insecure-requests", "1"),
        ("x-forwarded-for", "6.6.6.6"),
    ]);
    let host = HeaderValue::from_static("app.example.com");
    let client = bench_support::forwarded_for("192.0.2.7".parse().expect("an IPv4 address"));
    let mut out = Vec::new();
    bench_support::encode_request_head(&browser, &client, "https", &host, &mut out);
    let head = String::from_utf8_lossy(&out);
    assert!(head.contains("x-forwarded-for: 192.0.2.7\r\n") && !head.contains("6.6.6.6"));
    for (name, parts) in [("request_minimal", &minimal), ("request_browser", &browser)] {
        group.bench_function(name, |b| {
            b.iter(|| {
                bench_support::encode_request_head(
                    black_box(parts),
                    &client,
                    "https",
                    &host,
                    &mut out,
                );
                black_box(out.len())
            });
        });
    }
    // What the load harness's backend (nginx) answers.
    let response = bytes::BytesMut::from(
        &b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Sat, 22 Nov 2025 06:00:00 GMT\r\n\
Content-Type: text/plain\r\nContent-Length: 3\r\nConnection: keep-alive\r\n\r\nok\n"[..],
    );
    let mut parser = bench_support::ResponseHeadParser::default();
    // Four fields kept: `Connection` is hop-by-hop.
    assert_eq!(parser.parse(&mut response.clone()), Some(4));
    group.bench_function("response_head_parse", |b| {
        b.iter_batched_ref(
            || response.clone(),
            |buf| parser.parse(black_box(buf)),
            BatchSize::SmallInput,
        );
    });
    group.finish();
}

criterion_group!(benches, rewrite);
criterion_main!(benches);
