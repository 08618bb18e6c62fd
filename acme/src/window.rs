//! When a certificate is due for renewal.

/// The renewal window for a certificate valid from `not_before` to
/// `not_after` (Unix seconds) opens at the earlier of:
/// * `renew_before` seconds before expiry (30 days by default), and
/// * two thirds into its lifetime (the start of its last third).
///
/// For a short-lived certificate (days or hours), "30 days before expiry"
/// lies before it was even issued; that point would make it due forever, so
/// only the last-third rule applies there.
///
/// A CA-suggested window start (ACME Renewal Information, RFC 9773) takes
/// precedence when given.
pub fn renewal_time(
    not_before: i64,
    not_after: i64,
    renew_before: i64,
    ari_start: Option<i64>,
) -> i64 {
    if let Some(start) = ari_start {
        return start;
    }
    let lifetime = (not_after - not_before).max(0);
    let two_thirds = not_before + lifetime * 2 / 3;
    let before_expiry = not_after - renew_before;
    if before_expiry > not_before {
        before_expiry.min(two_thirds)
    } else {
        two_thirds
    }
}

/// True when the certificate should be renewed at `now`.
pub fn is_due(
    now: i64,
    not_before: i64,
    not_after: i64,
    renew_before: i64,
    ari_start: Option<i64>,
) -> bool {
    now >= renewal_time(not_before, not_after, renew_before, ari_start)
}

/// Delay before retrying names that failed `failures` times in a row:
/// 1 min, doubling, capped at `cap` seconds.
pub fn backoff_seconds(failures: u32, cap: i64) -> i64 {
    let exponent = failures.saturating_sub(1).min(30);
    60i64.saturating_mul(1i64 << exponent).min(cap.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400;
    const THIRTY_DAYS: i64 = 30 * DAY;

    #[test]
    fn ninety_day_certificate_renews_thirty_days_before_expiry() {
        // Two thirds of 90 days is day 60 = 30 days before expiry: both rules agree.
        assert_eq!(renewal_time(0, 90 * DAY, THIRTY_DAYS, None), 60 * DAY);
        assert!(!is_due(60 * DAY - 1, 0, 90 * DAY, THIRTY_DAYS, None));
        assert!(is_due(60 * DAY, 0, 90 * DAY, THIRTY_DAYS, None));
    }

    #[test]
    fn year_long_certificate_renews_at_the_earlier_point() {
        // 30 days before expiry is day 335; the last third starts earlier.
        assert_eq!(
            renewal_time(0, 365 * DAY, THIRTY_DAYS, None),
            365 * DAY * 2 / 3
        );
    }

    #[test]
    fn forty_five_day_certificate_renews_thirty_days_before_expiry() {
        assert_eq!(renewal_time(0, 45 * DAY, THIRTY_DAYS, None), 15 * DAY);
    }

    #[test]
    fn short_lived_certificate_uses_the_last_third() {
        // A 6-day certificate: 30 days before expiry is before it was issued;
        // the last third starts on day 4.
        assert_eq!(renewal_time(0, 6 * DAY, THIRTY_DAYS, None), 4 * DAY);
        // A 60-second test certificate renews after 40 seconds.
        assert_eq!(renewal_time(1000, 1060, THIRTY_DAYS, None), 1040);
    }

    #[test]
    fn ari_window_wins() {
        assert_eq!(
            renewal_time(0, 90 * DAY, THIRTY_DAYS, Some(70 * DAY)),
            70 * DAY
        );
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        assert_eq!(backoff_seconds(1, 3600), 60);
        assert_eq!(backoff_seconds(2, 3600), 120);
        assert_eq!(backoff_seconds(3, 3600), 240);
        assert_eq!(backoff_seconds(10, 3600), 3600);
        assert_eq!(backoff_seconds(u32::MAX, 3600), 3600);
    }
}
