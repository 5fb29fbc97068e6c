//! The HTTP/1.1 server under the application: at most `max_connections` connections served at
//! once, a connection closed when it takes longer than `header_timeout` to send a request's
//! headers (idle keep-alive connections included), and a request answered 408 when its body
//! takes longer than `body_timeout` to arrive. When every connection is taken and another
//! client connects, the connection idle longest (no request in the application: one that sent
//! nothing or half a request head, or a kept-alive one between requests) is closed to make room
//! for it, else, when none is idle, the oldest whose request body is still arriving; a
//! connection whose whole request is in and being answered is never closed for that. Slow or
//! idle clients can therefore neither hold the server's file descriptors for ever nor keep
//! others out while they wait for the timeouts.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{BoxError, Router};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{watch, Notify, Semaphore};
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
    let held = Arc::new(Held::new());
    let (stop, stopping) = watch::channel(false);
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    tokio::pin!(shutdown);
    loop {
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
        // Every slot taken: the connection idle longest makes room, or (all of them being
        // served) the new one waits for a slot, and clients beyond it in the listen queue.
        let slot = match open.clone().try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                held.close_idle_longest();
                tokio::select! {
                    slot = open.clone().acquire_owned() => match slot {
                        Ok(slot) => slot,
                        Err(_) => break,
                    },
                    () = &mut shutdown => break,
                }
            }
        };
        let _ = stream.set_nodelay(true);
        let (id, this) = held.add();
        let service = {
            let app = app.clone();
            let this = this.clone();
            hyper::service::service_fn(move |mut request: Request<hyper::body::Incoming>| {
                request.extensions_mut().insert(ConnectInfo(remote));
                let mut app = app.clone();
                let serving = Serving::start(this.clone());
                let request = request.map(|body| {
                    if body.is_end_stream() {
                        Body::new(body)
                    } else {
                        Body::new(Receiving::start(body, this.clone()))
                    }
                });
                async move {
                    let response = app.call(request).await?;
                    // Served until its body has been sent.
                    Ok::<_, std::convert::Infallible>(response.map(|body| {
                        Body::new(ServedBody {
                            inner: body,
                            _serving: serving,
                        })
                    }))
                }
            })
        };
        let connection = http.serve_connection(TokioIo::new(stream), service);
        let mut stopping = stopping.clone();
        let held = held.clone();
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
                // Dropping the connection closes it.
                () = this.close.notified() => Ok(()),
            };
            held.remove(id);
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

/// The connections being served, and since when each has been idle.
struct Held {
    started: Instant,
    next: AtomicU64,
    connections: Mutex<HashMap<u64, Arc<Connection>>>,
}

/// One connection: its requests in the application, since when it has had none, and how to
/// close it.
struct Connection {
    /// When the server started: `idle_since` counts from it.
    started: Instant,
    serving: AtomicUsize,
    /// Requests whose body is still arriving.
    receiving: AtomicUsize,
    /// Microseconds after the server started.
    idle_since: AtomicU64,
    close: Notify,
}

impl Connection {
    fn now(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_micros()).unwrap_or(u64::MAX)
    }
}

impl Held {
    fn new() -> Self {
        Held {
            started: Instant::now(),
            next: AtomicU64::new(0),
            connections: Mutex::new(HashMap::new()),
        }
    }

    fn add(&self) -> (u64, Arc<Connection>) {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let connection = Arc::new(Connection {
            started: self.started,
            serving: AtomicUsize::new(0),
            receiving: AtomicUsize::new(0),
            idle_since: AtomicU64::new(0),
            close: Notify::new(),
        });
        connection
            .idle_since
            .store(connection.now(), Ordering::Relaxed);
        if let Ok(mut all) = self.connections.lock() {
            all.insert(id, connection.clone());
        }
        (id, connection)
    }

    fn remove(&self, id: u64) {
        if let Ok(mut all) = self.connections.lock() {
            all.remove(&id);
        }
    }

    /// Closes the connection that has been idle longest, else the oldest one still receiving a
    /// request body, if any.
    fn close_idle_longest(&self) {
        let Ok(mut all) = self.connections.lock() else {
            return;
        };
        let idlest = all
            .iter()
            .filter(|(_, c)| c.serving.load(Ordering::Acquire) == 0)
            .min_by_key(|(_, c)| c.idle_since.load(Ordering::Relaxed))
            .or_else(|| {
                all.iter()
                    .filter(|(_, c)| c.receiving.load(Ordering::Acquire) > 0)
                    .min_by_key(|(id, _)| **id)
            })
            .map(|(id, c)| (*id, c.clone()));
        if let Some((id, connection)) = idlest {
            // Taken out at once, so that the next newcomer picks another one.
            all.remove(&id);
            connection.close.notify_one();
        }
    }
}

/// A request in the application, until its response's body is sent (or dropped).
struct Serving {
    connection: Arc<Connection>,
}

impl Serving {
    fn start(connection: Arc<Connection>) -> Self {
        connection.serving.fetch_add(1, Ordering::AcqRel);
        Serving { connection }
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        let now = self.connection.now();
        self.connection.idle_since.store(now, Ordering::Relaxed);
        self.connection.serving.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A request body that keeps its connection counted as receiving until it has all arrived (or
/// is dropped).
struct Receiving {
    inner: hyper::body::Incoming,
    connection: Option<Arc<Connection>>,
}

impl Receiving {
    fn start(inner: hyper::body::Incoming, connection: Arc<Connection>) -> Self {
        connection.receiving.fetch_add(1, Ordering::AcqRel);
        Receiving {
            inner,
            connection: Some(connection),
        }
    }

    fn arrived(&mut self) {
        if let Some(connection) = self.connection.take() {
            connection.receiving.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl Drop for Receiving {
    fn drop(&mut self) {
        self.arrived();
    }
}

impl HttpBody for Receiving {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None) | Poll::Ready(Some(Err(_))))
            || self.inner.is_end_stream()
        {
            self.arrived();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// A response body that keeps its connection counted as serving until it is sent.
struct ServedBody {
    inner: Body,
    _serving: Serving,
}

impl HttpBody for ServedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
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
