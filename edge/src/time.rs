//! The runtime's clock. In a Worker it advances only across I/O (a Spectre mitigation), which is
//! what every timestamp here wants: the time an event was handled.

use worker::Date;

/// Milliseconds since the Unix epoch.
pub fn now() -> i64 {
    Date::now().as_millis() as i64
}
