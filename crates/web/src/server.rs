//! The HTTP/1.1 server under the application: at most `max_connections` connections served at
//! once (more wait in the listen queue), a connection closed when it takes longer than
//! `header_timeout` to send a request's headers (idle keep-alive connections included), and a
//! request answered 408 when its body takes longer than `body_timeout` to arrive. Slow or idle
//! clients can therefore not hold the server's file descriptors for ever.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{BoxError, Router};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tower::Service;

use crate::ServerLimits;

/// Serves `app` on `listener` within `limits` until `shutdown` completes, then lets the requests
/// in flight finish.
pub async fn run(
    listener: TcpListener,
    app: Router,
    limits: ServerLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // A million is beyond any open-file limit, and within what `acquire_many` takes.
    let max = limits.max_connections.clamp(1, 1_000_000);
    let open = Arc::new(Semaphore::new(max));
    let (stop, stopping) = watch::channel(false);
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    tokio::pin!(shutdown);
    loop {
        // A slot first, then the connection: beyond the limit, clients wait in the listen
        // queue (holding no descriptor of this process) until a connection closes.
        let slot = tokio::select! {
            slot = open.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    accept_failed(&e).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let service = {
            let app = app.clone();
            hyper::service::service_fn(move |mut request: Request<hyper::body::Incoming>| {
                request.extensions_mut().insert(ConnectInfo(remote));
                let mut app = app.clone();
                async move { app.call(request.map(Body::new)).await }
            })
        };
        let connection = http.serve_connection(TokioIo::new(stream), service);
        let mut stopping = stopping.clone();
        tokio::spawn(async move {
            let _slot = slot;
            tokio::pin!(connection);
            let stop = async move {
                let _ = stopping.wait_for(|s| *s).await;
            };
            let result = tokio::select! {
                result = connection.as_mut() => result,
                () = stop => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(e) = result {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    let _ = stop.send(true);
    // Every slot back means every connection has ended.
    let _ = open.acquire_many(max as u32).await;
    Ok(())
}

/// Errors of `accept` that concern one connection are skipped; others (out of descriptors,
/// most often) are logged and waited out, so that the loop does not spin.
async fn accept_failed(e: &std::io::Error) {
    use std::io::ErrorKind::*;
    if matches!(
        e.kind(),
        ConnectionAborted | ConnectionReset | ConnectionRefused | Interrupted
    ) {
        return;
    }
    tracing::error!(error = %e, "accepting a connection failed");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// Answers 408 (and closes the connection) when the request's body has not arrived in full
/// within the body timeout, counted from when its headers did; whatever the handler made of
/// the cut-off body is dropped.
pub(crate) async fn body_deadline(
    State(limit): State<Duration>,
    request: Request,
    next: Next,
) -> Response {
    let expired = Arc::new(AtomicBool::new(false));
    let request = {
        let expired = expired.clone();
        request.map(move |body| {
            Body::new(Deadline {
                inner: body,
                sleep: Box::pin(tokio::time::sleep(limit)),
                expired,
            })
        })
    };
    let response = next.run(request).await;
    if !expired.load(Ordering::Relaxed) {
        return response;
    }
    let message = format!(
        "the request body did not arrive within {} seconds\n",
        limit.as_secs()
    );
    let mut response = (StatusCode::REQUEST_TIMEOUT, message).into_response();
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// A body that fails once its deadline has passed.
struct Deadline {
    inner: Body,
    sleep: Pin<Box<tokio::time::Sleep>>,
    expired: Arc<AtomicBool>,
}

/// The error a [`Deadline`] body ends with.
#[derive(Debug, thiserror::Error)]
#[error("the request body took too long to arrive")]
struct BodyTimedOut;

impl HttpBody for Deadline {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, BoxError>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(BoxError::from)));
        }
        if self.sleep.as_mut().poll(cx).is_ready() {
            self.expired.store(true, Ordering::Relaxed);
            return Poll::Ready(Some(Err(BoxError::from(BodyTimedOut))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
