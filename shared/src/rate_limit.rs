//! A token bucket, driven by an explicit clock so it can be tested without waiting.

/// A token bucket: holds up to `capacity` tokens and gains `per_second` tokens each second.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenBucket {
    capacity: f64,
    per_second: f64,
    tokens: f64,
    updated_ms: i64,
}

/// Limits applied to one connection.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimits {
    /// Burst of mutations (send, edit, delete).
    pub send_burst: f64,
    /// Sustained mutations per second.
    pub send_per_second: f64,
    /// Burst of frames of any kind.
    pub frame_burst: f64,
    /// Sustained frames of any kind per second.
    pub frame_per_second: f64,
}

impl Default for RateLimits {
    /// Generous for a person typing (a burst of 20 messages, then 5 per second), tight enough
    /// that one socket cannot flood a room.
    fn default() -> Self {
        RateLimits {
            send_burst: 20.0,
            send_per_second: 5.0,
            frame_burst: 60.0,
            frame_per_second: 20.0,
        }
    }
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(capacity: f64, per_second: f64, now_ms: i64) -> Self {
        TokenBucket {
            capacity,
            per_second,
            tokens: capacity,
            updated_ms: now_ms,
        }
    }

    fn refill(&mut self, now_ms: i64) {
        // A clock that steps backwards must not mint tokens or underflow.
        let elapsed = (now_ms - self.updated_ms).max(0) as f64 / 1000.0;
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.capacity);
        self.updated_ms = self.updated_ms.max(now_ms);
    }

    /// Takes one token. On refusal returns how many milliseconds until one is available.
    pub fn try_take(&mut self, now_ms: i64) -> Result<(), u64> {
        self.refill(now_ms);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else if self.per_second <= 0.0 {
            Err(u64::MAX)
        } else {
            let missing = 1.0 - self.tokens;
            Err((missing / self.per_second * 1000.0).ceil() as u64)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_bucket_allows_its_burst_then_refuses_with_a_retry_time() {
        let mut bucket = TokenBucket::new(3.0, 2.0, 0);
        for _ in 0..3 {
            assert!(bucket.try_take(0).is_ok());
        }
        assert_eq!(bucket.try_take(0), Err(500));
    }

    #[test]
    fn tokens_come_back_at_the_sustained_rate_but_never_above_capacity() {
        let mut bucket = TokenBucket::new(2.0, 1.0, 0);
        bucket.try_take(0).unwrap();
        bucket.try_take(0).unwrap();
        assert!(bucket.try_take(999).is_err());
        assert!(bucket.try_take(1000).is_ok());
        // A long idle refills to capacity only.
        let later = 1_000_000;
        assert!(bucket.try_take(later).is_ok());
        assert!(bucket.try_take(later).is_ok());
        assert!(bucket.try_take(later).is_err());
    }

    #[test]
    fn a_clock_stepping_backwards_does_not_mint_tokens() {
        let mut bucket = TokenBucket::new(1.0, 1.0, 10_000);
        bucket.try_take(10_000).unwrap();
        assert!(bucket.try_take(0).is_err());
        assert!(bucket.try_take(10_500).is_err());
        assert!(bucket.try_take(11_000).is_ok());
    }
}
