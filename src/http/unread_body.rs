//! Closes a connection whose request body was not read to its end.
//!
//! actix-http drains a *dropped* chunked request body to its end before it reads the next
//! request, with no time limit: a client that declares a huge chunk and trickles it holds the
//! connection (and a file descriptor) for good, whether roomd refused it (401, 408, 413) or never
//! wanted a body (a GET). A body still *held* when the response goes out makes it close the
//! connection instead, after the `client_disconnect_timeout` linger. So this middleware hands the
//! route a view of the body, and when the route is done without reading it to the end, holds the
//! body a moment longer than that linger. A body read to its end (every well-formed request) costs
//! nothing more.

use actix_web::body::MessageBody;
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::web::Bytes;
use actix_web::{Error, HttpMessage};
use futures_util::Stream;
use std::cell::{Cell, RefCell};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

/// Longer than the server's `client_disconnect_timeout`, so the body outlives the linger.
const HOLD: Duration = Duration::from_secs(2);

struct Shared {
    payload: RefCell<Payload>,
    ended: Cell<bool>,
}

/// The route's view of the request body.
struct Tracked(Rc<Shared>);

impl Stream for Tracked {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let polled = Pin::new(&mut *self.0.payload.borrow_mut()).poll_next(cx);
        if let Poll::Ready(None) = polled {
            self.0.ended.set(true);
        }
        polled
    }
}

pub async fn close_on_unread_body(
    mut req: ServiceRequest,
    next: actix_web::middleware::Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let shared = match req.take_payload() {
        Payload::None => None,
        payload => {
            let shared = Rc::new(Shared {
                payload: RefCell::new(payload),
                ended: Cell::new(false),
            });
            req.set_payload(Payload::Stream {
                payload: Box::pin(Tracked(shared.clone())),
            });
            Some(shared)
        }
    };
    let res = next.call(req).await;
    if let Some(shared) = shared.filter(|s| !s.ended.get()) {
        actix_web::rt::spawn(async move {
            tokio::time::sleep(HOLD).await;
            drop(shared);
        });
    }
    res
}
