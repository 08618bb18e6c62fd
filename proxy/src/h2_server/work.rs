//! What a stream waits on: the handler's answer, then each frame of the
//! answer's body. The connection polls all of them in one set, woken one
//! by one, instead of spawning a task per stream.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::Response;
use http_body::Body as _;

use crate::handler::ProxyBody;

/// The handler's answer to one request.
pub(crate) type Answering =
    Pin<Box<dyn Future<Output = Result<Response<ProxyBody>, Infallible>> + Send>>;

/// A stream's pending step; `None` once the stream is reset, so that the
/// exchange is dropped at once (a set cannot remove one of its members).
pub(crate) struct Work {
    pub(crate) stream: u32,
    pub(crate) job: Option<Job>,
}

pub(crate) enum Job {
    Answer(Answering),
    Body(ProxyBody),
}

/// What a step brought.
pub(crate) enum Done {
    Answer(Response<ProxyBody>),
    /// The body's next frame (`None`: the body ended), and the body.
    Frame(ProxyBody, Option<Result<http_body::Frame<Bytes>, ()>>),
    Cancelled,
}

impl Future for Work {
    type Output = (u32, Done);

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let stream = self.stream;
        let done = match &mut self.job {
            None => Done::Cancelled,
            Some(Job::Answer(answering)) => match std::task::ready!(answering.as_mut().poll(cx)) {
                Ok(response) => Done::Answer(response),
                Err(never) => match never {},
            },
            Some(Job::Body(body)) => {
                let frame = std::task::ready!(Pin::new(&mut *body).poll_frame(cx));
                let Some(Job::Body(body)) = self.job.take() else {
                    return Poll::Ready((stream, Done::Cancelled));
                };
                Done::Frame(body, frame.map(|frame| frame.map_err(drop)))
            }
        };
        self.job = None;
        Poll::Ready((stream, done))
    }
}

/// Polls `body` for its next frame in the caller's task: most answers are
/// ready whole when their head is, and need no place in the set.
pub(crate) fn poll_body(
    body: &mut ProxyBody,
    cx: &mut Context<'_>,
) -> Poll<Option<Result<http_body::Frame<Bytes>, ()>>> {
    Pin::new(body)
        .poll_frame(cx)
        .map(|frame| frame.map(|frame| frame.map_err(drop)))
}
