//! The commit wait (SPEC §5, ARCHITECTURE.md "Revisions"): a request whose writes were issued a
//! revision is answered only a lease after it returned, so by the time a client learns of the write,
//! every replica answering checks from memory has polled the change feed after its commit.
use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use tower::{Layer, Service};

#[derive(Clone, Copy)]
pub struct CommitWaitLayer(pub Duration);

impl<S> Layer<S> for CommitWaitLayer {
    type Service = CommitWait<S>;

    fn layer(&self, inner: S) -> CommitWait<S> {
        CommitWait {
            inner,
            lease: self.0,
        }
    }
}

#[derive(Clone)]
pub struct CommitWait<S> {
    inner: S,
    lease: Duration,
}

impl<S, R> Service<R> for CommitWait<S>
where
    S: Service<R>,
    S::Future: Send + 'static,
    S::Response: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: R) -> Self::Future {
        let answer = self.inner.call(request);
        let lease = self.lease;
        Box::pin(async move {
            // The receipt records a revision only inside a write's transaction, so reads never wait.
            let (answer, receipt) = warden_store::with_receipt(answer).await;
            if receipt.is_some() {
                tokio::time::sleep(lease).await;
            }
            answer
        })
    }
}
