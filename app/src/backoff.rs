//! Reconnect timing: exponential backoff with jitter, and the throttle for typing frames.

use shared::protocol::Millis;

/// The first retry waits about this long.
pub const BACKOFF_MIN_MS: Millis = 500;
/// No retry waits longer than this.
pub const BACKOFF_MAX_MS: Millis = 30_000;

/// The delay before reconnect attempt `attempt` (0 for the first retry after a drop).
///
/// The ceiling doubles from [`BACKOFF_MIN_MS`] up to [`BACKOFF_MAX_MS`]; `jitter` (0..1, from
/// `Math.random`) takes up to a quarter off it, so that tabs dropped by the same outage do not
/// all come back in the same instant.
pub fn delay_ms(attempt: u32, jitter: f64) -> Millis {
    let ceiling = BACKOFF_MIN_MS
        .saturating_mul(1 << attempt.min(16))
        .min(BACKOFF_MAX_MS);
    let off = (ceiling as f64 * 0.25 * jitter.clamp(0.0, 1.0)) as Millis;
    ceiling - off
}

/// How often a `typing` frame may go out while the user types.
pub const TYPING_EVERY_MS: Millis = 3_000;

/// Lets at most one event through per `every` milliseconds.
#[derive(Debug, Clone, Default)]
pub struct Throttle {
    last: Option<Millis>,
}

impl Throttle {
    /// Whether an event at `now` may go out; records it if so.
    pub fn allow(&mut self, now: Millis, every: Millis) -> bool {
        match self.last {
            Some(last) if now - last < every => false,
            _ => {
                self.last = Some(now);
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_retry_waits_about_half_a_second() {
        assert_eq!(delay_ms(0, 0.0), 500);
        assert!(delay_ms(0, 1.0) >= 375);
    }

    #[test]
    fn delays_double_until_the_cap_and_never_exceed_it() {
        assert_eq!(delay_ms(1, 0.0), 1_000);
        assert_eq!(delay_ms(2, 0.0), 2_000);
        assert_eq!(delay_ms(6, 0.0), 30_000);
        for attempt in 0..100 {
            for jitter in [0.0, 0.5, 1.0] {
                let d = delay_ms(attempt, jitter);
                assert!(
                    (375..=BACKOFF_MAX_MS).contains(&d),
                    "{attempt} {jitter} {d}"
                );
            }
        }
    }

    #[test]
    fn jitter_only_ever_shortens_the_delay_by_up_to_a_quarter() {
        assert_eq!(delay_ms(3, 1.0), 3_000);
        assert_eq!(delay_ms(3, 0.5), 3_500);
        assert_eq!(delay_ms(3, 7.0), 3_000, "out-of-range jitter is clamped");
    }

    #[test]
    fn the_typing_throttle_lets_one_frame_through_per_interval() {
        let mut t = Throttle::default();
        assert!(t.allow(0, TYPING_EVERY_MS));
        assert!(!t.allow(2_999, TYPING_EVERY_MS));
        assert!(t.allow(3_000, TYPING_EVERY_MS));
        assert!(!t.allow(3_001, TYPING_EVERY_MS));
    }
}
