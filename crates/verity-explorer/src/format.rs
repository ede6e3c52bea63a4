//! How values read on a page: short ids that link to their page, times, ages, amounts.

use maud::{Markup, html};
use verity_ledger::JobState;
use verity_types::{Address, JobId};

use crate::routes::{JOB_PAGE, PROVIDER_PAGE};

/// Hex digits an id shows (after `0x`); the whole id is in the link and its tooltip, and any
/// unique prefix of it opens the same page.
const SHORT_HEX: usize = 8;

/// `0x48ed607f…` for a `0x`-prefixed id.
pub fn short(id: &str) -> String {
    let hex = id.strip_prefix("0x").unwrap_or(id);
    if hex.len() <= SHORT_HEX {
        return id.to_string();
    }
    format!("0x{}…", &hex[..SHORT_HEX])
}

pub fn job_link(id: &JobId) -> Markup {
    let id = id.to_string();
    html! { a.id href=(crate::page_path(JOB_PAGE, &id)) title=(id) { (short(&id)) } }
}

pub fn address_link(address: &Address) -> Markup {
    let a = address.to_string();
    html! { a.id href=(crate::page_path(PROVIDER_PAGE, &a)) title=(a) { (short(&a)) } }
}

pub fn block_link(height: u64) -> Markup {
    html! { a href={"/blocks/" (height)} { (height) } }
}

/// A whole id in monospace, for the page that is about it.
pub fn full_id(id: &str) -> Markup {
    html! { code.full { (id) } }
}

pub fn state_badge(state: JobState) -> Markup {
    html! { span class={"badge " (state.name())} { (state.name()) } }
}

/// Milliseconds since the epoch as `2026-12-04 07:18:35 UTC`.
pub fn utc(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// How long before `now_ms` something happened: `4 s ago`, `3 min ago`, `2 h ago`.
pub fn age(then_ms: u64, now_ms: u64) -> String {
    let s = now_ms.saturating_sub(then_ms) / 1000;
    match s {
        0..=59 => format!("{s} s ago"),
        60..=3599 => format!("{} min ago", s / 60),
        3600..=86_399 => format!("{} h ago", s / 3600),
        _ => format!("{} d ago", s / 86_400),
    }
}

/// A time as a person reads it: the age, with the exact UTC time as tooltip.
pub fn when(then_ms: u64, now_ms: u64) -> Markup {
    html! { time datetime=(then_ms) title=(utc(then_ms)) { (age(then_ms, now_ms)) } }
}

/// Basis points (per 10,000) as a percentage with one decimal.
pub fn percent_bp(bp: u32) -> String {
    format!("{}.{}%", bp / 100, bp % 100 / 10)
}

pub fn or_dash<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or_else(|| "–".to_string(), |v| v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_dates_are_gregorian() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        // 2024-02-29 12:34:56 UTC, a leap day.
        assert_eq!(utc(1_709_210_096_000), "2024-02-29 12:34:56 UTC");
        assert_eq!(utc(1_796_368_715_000), "2026-12-04 07:18:35 UTC");
    }

    #[test]
    fn ages_and_short_ids() {
        assert_eq!(age(1_000, 5_500), "4 s ago");
        assert_eq!(age(0, 7_200_000), "2 h ago");
        assert_eq!(age(10_000, 5_000), "0 s ago");
        assert_eq!(short("0x48ed607fabcdef"), "0x48ed607f…");
        assert_eq!(short("0x48ed"), "0x48ed");
        assert_eq!(percent_bp(9_876), "98.7%");
    }
}
