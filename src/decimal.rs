//! Decimal rounding of the measured numbers bpm-edge stores, serves and
//! sends (counts, ratios, shares, percentages, latencies, test statistics),
//! so JSON, CSV and webhook text carry a fixed number of decimals and no
//! float noise.
//!
//! Invariant: [`round_to`] is the rounding: `x · 10^places` rounded half
//! away from zero (`f64::round`), divided back; a non-finite `x` passes
//! through (serde_json writes it as `null`). [`round_to_unsigned_zero`] is
//! that rounding for text and webhook bodies, which never show "-0".

/// `x` rounded to `places` decimals, half away from zero. NaN and ±∞ pass
/// through, a result that rounds to zero keeps the sign of `x` (−0.001 →
/// −0), and a finite `x` too large to scale by `10^places` becomes ±∞.
pub fn round_to(x: f64, places: i32) -> f64 {
    let scale = 10f64.powi(places);
    (x * scale).round() / scale
}

/// [`round_to`], but −0 is 0 and a finite `x` too large to scale stays `x`
/// (it has no decimals left to round), so a finite input gives a finite
/// output; NaN and ±∞ pass through.
pub fn round_to_unsigned_zero(x: f64, places: i32) -> f64 {
    let r = round_to(x, places);
    if r.is_finite() {
        r + 0.0
    } else {
        x
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_half_away_from_zero_at_the_given_places() {
        assert_eq!(round_to(0.123_456, 4), 0.1235);
        assert_eq!(round_to(840.25, 1), 840.3);
        assert_eq!(round_to(-6.123_456, 2), -6.12);
        assert_eq!(round_to(2.5, 0), 3.0);
        assert_eq!(round_to(-2.5, 0), -3.0);
        assert_eq!(round_to(36.0, 3), 36.0);
        // The scale is exact, so this is the rounding the reports always
        // did with the literals 100 and 10 000.
        for x in [0.005, 1.234_567, -0.015, 12_345.678_9, 1e-9] {
            assert_eq!(round_to(x, 2), (x * 100.0).round() / 100.0, "{x}");
            assert_eq!(round_to(x, 4), (x * 10_000.0).round() / 10_000.0, "{x}");
        }
    }

    #[test]
    fn signs_and_non_finite_values() {
        assert!(round_to(f64::NAN, 2).is_nan());
        assert_eq!(round_to(f64::NEG_INFINITY, 2), f64::NEG_INFINITY);
        assert!(round_to(-0.001, 2).is_sign_negative());
        assert_eq!(round_to(f64::MAX, 4), f64::INFINITY);

        assert!(round_to_unsigned_zero(f64::NAN, 2).is_nan());
        assert_eq!(round_to_unsigned_zero(f64::INFINITY, 1), f64::INFINITY);
        let zero = round_to_unsigned_zero(-0.001, 2);
        assert!(zero == 0.0 && zero.is_sign_positive());
        assert_eq!(round_to_unsigned_zero(-0.0, 0).to_string(), "0");
        assert_eq!(round_to_unsigned_zero(f64::MAX, 4), f64::MAX);
        assert_eq!(round_to_unsigned_zero(-6.123_456, 2), -6.12);
    }
}
