//! `Server-Timing` for API responses: where a request's time went (session lookup, directory,
//! room call), measured with the runtime's clock around the awaits that do the I/O.
//!
//! The Worker serves many requests at once in one isolate, interleaved at their awaits, so a
//! global "current request" would mix them up. Instead each request's future is wrapped in a
//! [`Timed`], which makes its own phase list the current one only while *that* future is being
//! polled; a phase measured anywhere inside ([`measure`]) starts and ends within polls of its
//! own request, and so lands in that request's list. The cost is two clock reads per phase and
//! a short header: nothing a request would notice.
//!
//! A Worker's clock advances only across I/O (a Spectre mitigation), which is exactly what a
//! phase is: the time spent waiting on D1, KV or a Durable Object.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use shared::metrics::Phase;

/// The phases of one request, in the order they were first measured; a phase measured twice
/// adds up.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Phases {
    list: Vec<(&'static str, f64)>,
}

impl Phases {
    fn add(&mut self, name: &'static str, ms: f64) {
        match self.list.iter_mut().find(|(n, _)| *n == name) {
            Some((_, total)) => *total += ms,
            None => self.list.push((name, ms)),
        }
    }

    /// The `Server-Timing` header value, with `total` last: `session;dur=4, room;dur=12,
    /// total;dur=19`.
    pub fn header(&self, total_ms: f64) -> String {
        self.list
            .iter()
            .map(|(name, ms)| (*name, *ms))
            .chain([("total", total_ms)])
            .map(|(name, ms)| format!("{name};dur={}", round(ms)))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The phases for a slow-request record.
    pub fn to_vec(&self) -> Vec<Phase> {
        self.list
            .iter()
            .map(|(name, ms)| Phase {
                name: (*name).to_owned(),
                ms: round(*ms),
            })
            .collect()
    }
}

/// A tenth of a millisecond is as precise as the runtime's clock gets.
fn round(ms: f64) -> f64 {
    (ms * 10.0).round() / 10.0
}

thread_local! {
    static CURRENT: RefCell<Option<Rc<RefCell<Phases>>>> = const { RefCell::new(None) };
}

/// Milliseconds on the runtime's clock.
pub fn now_ms() -> f64 {
    #[cfg(target_arch = "wasm32")]
    {
        js_sys::Date::now()
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    }
}

/// A request's future with its own phase list (see the module docs).
pub struct Timed<F: Future> {
    inner: Pin<Box<F>>,
    phases: Rc<RefCell<Phases>>,
}

impl<F: Future> Timed<F> {
    /// Wraps a request's future.
    pub fn new(inner: F) -> Self {
        Timed {
            inner: Box::pin(inner),
            phases: Rc::default(),
        }
    }

    /// Its phases (shared with the future as it runs).
    pub fn phases(&self) -> Rc<RefCell<Phases>> {
        Rc::clone(&self.phases)
    }
}

impl<F: Future> Future for Timed<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let mine = Rc::clone(&self.phases);
        let outer = CURRENT.with(|c| c.replace(Some(mine)));
        let result = self.inner.as_mut().poll(cx);
        // Restored even for nested `Timed`s: the outer request is current again.
        CURRENT.with(|c| *c.borrow_mut() = outer);
        result
    }
}

/// Awaits `work`, adding the time it took to phase `name` of the request being served (if
/// any: outside a [`Timed`], nothing is recorded).
pub async fn measure<T>(name: &'static str, work: impl Future<Output = T>) -> T {
    let start = now_ms();
    let out = work.await;
    let took = now_ms() - start;
    CURRENT.with(|c| {
        if let Some(phases) = c.borrow().as_ref() {
            phases.borrow_mut().add(name, took);
        }
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::Waker;

    /// A future that is pending for `polls` polls, then ready.
    struct Yields(u32);

    impl Future for Yields {
        type Output = ();
        fn poll(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
            if self.0 == 0 {
                Poll::Ready(())
            } else {
                self.0 -= 1;
                Poll::Pending
            }
        }
    }

    #[test]
    fn the_header_lists_phases_in_order_with_total_last_and_repeats_summed() {
        let mut phases = Phases::default();
        phases.add("session", 3.04);
        phases.add("room", 10.0);
        phases.add("session", 1.0);
        assert_eq!(
            phases.header(20.26),
            "session;dur=4, room;dur=10, total;dur=20.3"
        );
        assert_eq!(Phases::default().header(1.0), "total;dur=1");
        assert_eq!(phases.to_vec()[0].name, "session");
    }

    #[test]
    fn phases_go_to_the_request_that_measured_them_even_when_two_requests_interleave() {
        let mut a = Timed::new(async {
            measure("session", Yields(2)).await;
            measure("room", Yields(1)).await;
        });
        let mut b = Timed::new(async {
            measure("directory", Yields(3)).await;
        });
        let (pa, pb) = (a.phases(), b.phases());
        let mut cx = Context::from_waker(Waker::noop());
        let (mut done_a, mut done_b) = (false, false);
        // Polled alternately, as the runtime would between their awaits.
        while !(done_a && done_b) {
            done_a = done_a || Pin::new(&mut a).poll(&mut cx).is_ready();
            done_b = done_b || Pin::new(&mut b).poll(&mut cx).is_ready();
        }
        let names = |p: &Rc<RefCell<Phases>>| -> Vec<&'static str> {
            p.borrow().list.iter().map(|(n, _)| *n).collect()
        };
        assert_eq!(names(&pa), ["session", "room"]);
        assert_eq!(names(&pb), ["directory"]);
        // Outside any request nothing is recorded (and nothing fails).
        let mut outside = Box::pin(measure("session", Yields(0)));
        assert!(outside.as_mut().poll(&mut cx).is_ready());
        assert!(CURRENT.with(|c| c.borrow().is_none()));
    }
}
