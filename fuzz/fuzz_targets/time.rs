//! `keystone::v3::parse_time`, the expiry/issue time parser of both API
//! versions: any text. A time it accepts round-trips through RFC 3339 and
//! through every spelling Keystone uses (fraction or not, `Z`, `+00:00`, no
//! zone at all = UTC); anything else is a clean error that names the text.
#![no_main]

use jiff::{RoundMode, Timestamp, TimestampRound, Unit};
use keystone_proxy::keystone::v3::parse_time;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let parsed = parse_time(text);
    // Surrounding white space never matters.
    assert_eq!(
        parse_time(&format!(" \t{text}\r\n")).map_err(|e| e.to_string()),
        parsed.as_ref().copied().map_err(|e| e.to_string())
    );
    let timestamp = match parsed {
        Ok(timestamp) => timestamp,
        Err(error) => {
            assert!(error.to_string().contains("is not a time"), "{error}");
            assert!(text.trim().parse::<Timestamp>().is_err());
            return;
        }
    };
    // A zoned time means exactly what jiff says it means.
    if let Ok(exact) = text.trim().parse::<Timestamp>() {
        assert_eq!(exact, timestamp);
    }
    // RFC 3339 as jiff writes it.
    assert_eq!(parse_time(&timestamp.to_string()).ok(), Some(timestamp));

    // Keystone's spellings, to the microsecond, for four-digit years.
    let year = timestamp.to_zoned(jiff::tz::TimeZone::UTC).year();
    if !(1..=9999).contains(&year) {
        return;
    }
    let micros = timestamp
        .round(
            TimestampRound::new()
                .smallest(Unit::Microsecond)
                .mode(RoundMode::Floor),
        )
        .unwrap();
    let seconds = micros
        .round(
            TimestampRound::new()
                .smallest(Unit::Second)
                .mode(RoundMode::Floor),
        )
        .unwrap();
    let fraction = micros.strftime("%Y-%m-%dT%H:%M:%S%.6f").to_string();
    let whole = micros.strftime("%Y-%m-%dT%H:%M:%S").to_string();
    for (spelling, expected) in [
        (format!("{fraction}Z"), micros),
        (fraction.clone(), micros),
        (format!("{fraction}+00:00"), micros),
        (format!("{whole}Z"), seconds),
        (whole.clone(), seconds),
    ] {
        assert_eq!(parse_time(&spelling).ok(), Some(expected), "{spelling}");
    }
});
