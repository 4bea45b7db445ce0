//! Capture timestamps as text: RFC 3339 UTC with microseconds, the form every output uses
//! (`2026-11-21T10:06:27.731204Z`). One implementation for the report, the journeys and the UI.

/// `2026-11-21T10:06:27.731204Z` from nanoseconds since the Unix epoch.
pub fn rfc3339_micros(ts_ns: i64) -> String {
    let mut b = Vec::with_capacity(27);
    rfc3339_micros_into(ts_ns, &mut b);
    String::from_utf8_lossy(&b).into_owned()
}

/// [`rfc3339_micros`] appended to a buffer.
pub fn rfc3339_micros_into(ts_ns: i64, out: &mut Vec<u8>) {
    let secs = ts_ns.div_euclid(1_000_000_000);
    let micros = ts_ns.rem_euclid(1_000_000_000) / 1000;
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    // Howard Hinnant's days → civil date.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + (m <= 2) as i64;
    if !(0..=9999).contains(&y) {
        let s = format!(
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{micros:06}Z",
            sod / 3600,
            sod / 60 % 60,
            sod % 60
        );
        out.extend_from_slice(s.as_bytes());
        return;
    }
    // Written digit by digit: this runs once per record and `format!` dominated it.
    let mut b = *b"0000-00-00T00:00:00.000000Z";
    let mut put = |at: usize, width: usize, mut v: i64| {
        for i in (at..at + width).rev() {
            b[i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(0, 4, y);
    put(5, 2, m);
    put(8, 2, d);
    put(11, 2, sod / 3600);
    put(14, 2, sod / 60 % 60);
    put(17, 2, sod % 60);
    put(20, 6, micros);
    out.extend_from_slice(&b);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339() {
        assert_eq!(rfc3339_micros(0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(
            rfc3339_micros(951_782_400_000_000_000),
            "2000-02-29T00:00:00.000000Z"
        );
        assert_eq!(rfc3339_micros(-1_000), "1969-12-31T23:59:59.999999Z");
        // Outside years 0..=9999 the slow path still gives a well-formed text.
        assert!(rfc3339_micros(i64::MAX).ends_with('Z'));
    }
}
