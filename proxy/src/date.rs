//! The `Date` field of answers (RFC 9110 §6.6.1), formatted once a second.

use std::cell::RefCell;
use std::time::{SystemTime, UNIX_EPOCH};

/// `Sun, 06 Nov 1994 08:49:37 GMT`: IMF-fixdate is always this long.
const LENGTH: usize = 29;

thread_local! {
    /// The second last formatted on this worker, and its text.
    static CACHED: RefCell<(u64, [u8; LENGTH])> = const { RefCell::new((u64::MAX, [0; LENGTH])) };
}

/// Appends the current date as an IMF-fixdate.
///
/// A proxy answering tens of thousands of requests a second would otherwise
/// format the same text again for each; reading the clock is cheap (vDSO),
/// formatting is not.
pub(crate) fn extend(out: &mut impl bytes::BufMut) {
    let now = SystemTime::now();
    let second = now
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    CACHED.with(|cached| {
        let mut cached = cached.borrow_mut();
        if cached.0 != second {
            let text = httpdate::fmt_http_date(now);
            if text.len() == LENGTH {
                cached.1.copy_from_slice(text.as_bytes());
                cached.0 = second;
            } else {
                // Years past 9999 only; not worth caching.
                out.put_slice(text.as_bytes());
                return;
            }
        }
        out.put_slice(&cached.1);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_date_is_the_current_second_as_an_http_date() {
        let mut out: Vec<u8> = Vec::new();
        extend(&mut out);
        let text = std::str::from_utf8(&out).unwrap();
        let parsed = httpdate::parse_http_date(text).unwrap();
        let skew = SystemTime::now().duration_since(parsed).unwrap();
        assert!(skew.as_secs() <= 1, "{text} is {skew:?} behind");
        // Formatted again from the cache, the same text.
        let mut again: Vec<u8> = Vec::new();
        extend(&mut again);
        assert!(
            again == out
                || httpdate::parse_http_date(std::str::from_utf8(&again).unwrap()).unwrap()
                    > parsed
        );
    }
}
