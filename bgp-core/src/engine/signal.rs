//! A wake-up flag between the engine and one peer's driver task, without
//! depending on a runtime: the engine raises it when the peer's outbox has
//! something, the task awaits it.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Mutex, PoisonError};
use std::task::{Context, Poll, Waker};

/// A flag with at most one waiter. Raising it while nobody waits is
/// remembered until the next wait, so no wake-up is lost.
#[derive(Debug, Default)]
pub struct Signal {
    state: Mutex<(bool, Option<Waker>)>,
}

impl Signal {
    /// A lowered flag.
    pub fn new() -> Signal {
        Signal::default()
    }

    /// Raises the flag and wakes the waiter, if any.
    pub fn raise(&self) {
        let waker = {
            let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            s.0 = true;
            s.1.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// Resolves once the flag is raised, lowering it again.
    pub fn wait(&self) -> Wait<'_> {
        Wait { signal: self }
    }
}

/// The future of [`Signal::wait`].
#[derive(Debug)]
pub struct Wait<'a> {
    signal: &'a Signal,
}

impl Future for Wait<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut s = self
            .signal
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if s.0 {
            s.0 = false;
            Poll::Ready(())
        } else {
            s.1 = Some(cx.waker().clone());
            Poll::Pending
        }
    }
}
