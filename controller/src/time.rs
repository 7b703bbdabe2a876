//! The wall clock, in one place: milliseconds since the Unix epoch (0 if
//! the clock is before it). Apply never reads it: a proposal carries the
//! leader's `now_ms`.

pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
