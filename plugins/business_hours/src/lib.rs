//! `business_hours`: tells the caller whether the business is open.
//!
//! Tool `check_business_hours`, arguments (both optional):
//! - `day`: a weekday (`monday`, `Mon`, ...) or `today` / `tomorrow`;
//! - `time`: `HH:MM`, 24-hour.
//!
//! With neither, it checks the current moment (the wall clock, UTC). With a
//! `time` only, that time today. With a `day` only, the whole day (`open`
//! means open at some point that day).
//!
//! The answer:
//!
//! ```json
//! {
//!   "day": "monday", "time": "18:15", "open": false,
//!   "hours": "09:00-17:30", "closes_at": null,
//!   "next_opening": {"day": "tuesday", "time": "09:00"},
//!   "summary": "Closed on Monday at 18:15. Opens next on Tuesday at 09:00."
//! }
//! ```
//!
//! The weekly schedule is the `SCHEDULE` constant below, in UTC.

use std::time::{SystemTime, UNIX_EPOCH};

use switchboard_sdk::prelude::*;

/// Opening hours per weekday, Monday first, as minutes since midnight UTC:
/// `Some((opens, closes))`, or `None` when closed all day.
const SCHEDULE: [Option<(u16, u16)>; 7] = [
    Some((9 * 60, 17 * 60 + 30)), // Monday    09:00-17:30
    Some((9 * 60, 17 * 60 + 30)), // Tuesday   09:00-17:30
    Some((9 * 60, 17 * 60 + 30)), // Wednesday 09:00-17:30
    Some((9 * 60, 20 * 60)),      // Thursday  09:00-20:00 (late opening)
    Some((9 * 60, 16 * 60)),      // Friday    09:00-16:00
    Some((10 * 60, 14 * 60)),     // Saturday  10:00-14:00
    None,                         // Sunday    closed
];

const DAYS: [&str; 7] = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"];

/// Arguments of `check_business_hours`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
struct HoursArgs {
    /// Day to check: a weekday name such as "monday", or "today" or "tomorrow". Default: today.
    day: Option<String>,
    /// Time of day to check, "HH:MM" in 24-hour format (UTC), e.g. "14:30". Default: now if no day is given, otherwise the whole day.
    time: Option<String>,
}

#[derive(Debug, PartialEq, Serialize)]
struct Opening {
    day: &'static str,
    time: String,
}

#[derive(Debug, PartialEq, Serialize)]
struct HoursAnswer {
    /// The weekday checked.
    day: &'static str,
    /// The time checked, or `None` for the whole day.
    time: Option<String>,
    /// Open at that time (or, for a whole day, at some point that day).
    open: bool,
    /// That day's hours, "09:00-17:30", or "closed".
    hours: String,
    /// When open at the time checked: when it closes.
    closes_at: Option<String>,
    /// When closed at the time checked (or all day): the next opening.
    next_opening: Option<Opening>,
    /// The answer in one or two sentences, to say to the caller.
    summary: String,
}

fn check_business_hours(args: HoursArgs, _ctx: &CallContext) -> Result<HoursAnswer, ToolError> {
    let (today, now) = utc_now();
    let day = match args.day.as_deref() {
        None => today,
        Some(day) => parse_day(day, today)?,
    };
    let time = match (args.time.as_deref(), &args.day) {
        (Some(time), _) => Some(parse_time(time)?),
        (None, None) => Some(now),
        (None, Some(_)) => None,
    };
    let is_now = args.day.is_none() && args.time.is_none();
    Ok(check(day, time, is_now))
}

/// The answer for weekday `day` (0 = Monday) at `time` (minutes since
/// midnight) or, if `None`, for the whole day. `is_now` only changes the
/// wording of the summary.
fn check(day: usize, time: Option<u16>, is_now: bool) -> HoursAnswer {
    let hours = SCHEDULE[day];
    let day_name = DAYS[day];
    let title = capitalize(day_name);
    let hours_text = match hours {
        Some((opens, closes)) => format!("{}-{}", hhmm(opens), hhmm(closes)),
        None => "closed".to_owned(),
    };
    let open = match (hours, time) {
        (None, _) => false,
        (Some(_), None) => true,
        (Some((opens, closes)), Some(t)) => opens <= t && t < closes,
    };
    let closes_at = match (open, hours, time) {
        (true, Some((_, closes)), Some(_)) => Some(hhmm(closes)),
        _ => None,
    };
    let next_opening = if open { None } else { next_opening(day, time.unwrap_or(0)) };
    let when = match (time, is_now) {
        (_, true) => "now".to_owned(),
        (Some(t), false) => format!("on {title} at {}", hhmm(t)),
        (None, false) => format!("on {title}"),
    };
    let mut summary = match (open, time, hours) {
        (true, Some(_), Some((_, closes))) => {
            format!("Open {when}; closes at {}.", hhmm(closes))
        }
        (true, None, Some((opens, closes))) => {
            format!("Open on {title} from {} to {}.", hhmm(opens), hhmm(closes))
        }
        (false, None, _) => format!("Closed all day on {title}."),
        _ => format!("Closed {when}."),
    };
    if let Some(next) = &next_opening {
        let next_day = if next.day == day_name && time.is_some() {
            "today".to_owned()
        } else {
            format!("on {}", capitalize(next.day))
        };
        summary.push_str(&format!(" Opens next {next_day} at {}.", next.time));
    }
    HoursAnswer { day: day_name, time: time.map(hhmm), open, hours: hours_text, closes_at, next_opening, summary }
}

/// The first opening after minute `time` of weekday `day`, looking up to a
/// week ahead.
fn next_opening(day: usize, time: u16) -> Option<Opening> {
    (0..=7).find_map(|ahead| {
        let d = (day + ahead) % 7;
        let (opens, _) = SCHEDULE[d]?;
        (ahead > 0 || time < opens).then(|| Opening { day: DAYS[d], time: hhmm(opens) })
    })
}

/// Today's weekday (0 = Monday) and the minutes since midnight, UTC.
fn utc_now() -> (usize, u16) {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    // 1970-01-01 was a Thursday (index 3).
    let day = ((secs / 86_400 + 3) % 7) as usize;
    let minutes = (secs % 86_400 / 60) as u16;
    (day, minutes)
}

fn parse_day(text: &str, today: usize) -> Result<usize, ToolError> {
    let lower = text.trim().to_lowercase();
    match lower.as_str() {
        "today" => return Ok(today),
        "tomorrow" => return Ok((today + 1) % 7),
        _ => {}
    }
    DAYS.iter().position(|day| lower.len() >= 3 && day.starts_with(lower.as_str())).ok_or_else(|| {
        ToolError::invalid_arguments(format!(
            "`day` must be a weekday name such as \"monday\", or \"today\" or \"tomorrow\"; got \"{text}\""
        ))
    })
}

fn parse_time(text: &str) -> Result<u16, ToolError> {
    let invalid = || {
        ToolError::invalid_arguments(format!(
            "`time` must be \"HH:MM\" in 24-hour format, e.g. \"14:30\"; got \"{text}\""
        ))
    };
    let (h, m) = text.trim().split_once(':').ok_or_else(invalid)?;
    // Hours: 1 or 2 digits, 0-23. Minutes: exactly 2 digits, 00-59.
    let number = |s: &str, digits: std::ops::RangeInclusive<usize>, max: u16| {
        let ok = digits.contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit());
        s.parse::<u16>().ok().filter(|n| ok && *n <= max)
    };
    match (number(h, 1..=2, 23), number(m, 2..=2, 59)) {
        (Some(h), Some(m)) => Ok(h * 60 + m),
        _ => Err(invalid()),
    }
}

fn hhmm(minutes: u16) -> String {
    format!("{:02}:{:02}", minutes / 60, minutes % 60)
}

fn capitalize(word: &str) -> String {
    let mut chars = word.chars();
    chars.next().map(|first| first.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

switchboard_sdk::plugin! {
    tool "check_business_hours" => check_business_hours,
        "Check whether the business is open on a day and time (default: right now), with that day's opening hours and the next opening time. Times are UTC.";
}

#[cfg(test)]
mod tests {
    use super::*;

    const MON: usize = 0;
    const THU: usize = 3;
    const SAT: usize = 5;
    const SUN: usize = 6;

    #[test]
    fn open_during_hours() {
        let answer = check(MON, Some(14 * 60 + 30), false);
        assert_eq!(
            answer,
            HoursAnswer {
                day: "monday",
                time: Some("14:30".into()),
                open: true,
                hours: "09:00-17:30".into(),
                closes_at: Some("17:30".into()),
                next_opening: None,
                summary: "Open on Monday at 14:30; closes at 17:30.".into(),
            }
        );
    }

    #[test]
    fn closed_after_hours_opens_next_day() {
        let answer = check(MON, Some(17 * 60 + 30), false);
        assert!(!answer.open);
        assert_eq!(answer.closes_at, None);
        assert_eq!(answer.next_opening, Some(Opening { day: "tuesday", time: "09:00".into() }));
        assert_eq!(answer.summary, "Closed on Monday at 17:30. Opens next on Tuesday at 09:00.");
    }

    #[test]
    fn closed_before_opening_opens_same_day() {
        let answer = check(SAT, Some(8 * 60), true);
        assert!(!answer.open);
        assert_eq!(answer.summary, "Closed now. Opens next today at 10:00.");
    }

    #[test]
    fn sunday_is_closed_until_monday() {
        let answer = check(SUN, None, false);
        assert!(!answer.open);
        assert_eq!(answer.hours, "closed");
        assert_eq!(answer.time, None);
        assert_eq!(answer.summary, "Closed all day on Sunday. Opens next on Monday at 09:00.");
        let answer = check(SAT, Some(15 * 60), false);
        assert_eq!(answer.next_opening, Some(Opening { day: "monday", time: "09:00".into() }));
    }

    #[test]
    fn whole_day() {
        let answer = check(THU, None, false);
        assert!(answer.open);
        assert_eq!(answer.closes_at, None);
        assert_eq!(answer.summary, "Open on Thursday from 09:00 to 20:00.");
    }

    #[test]
    fn parses_days() {
        assert_eq!(parse_day("Monday", SUN), Ok(MON));
        assert_eq!(parse_day(" THU ", SUN), Ok(THU));
        assert_eq!(parse_day("today", SAT), Ok(SAT));
        assert_eq!(parse_day("tomorrow", SUN), Ok(MON));
        for bad in ["", "mo", "funday", "mondays"] {
            assert!(matches!(parse_day(bad, MON), Err(ToolError::InvalidArguments(_))), "{bad}");
        }
    }

    #[test]
    fn parses_times() {
        assert_eq!(parse_time("14:30"), Ok(870));
        assert_eq!(parse_time("9:05"), Ok(545));
        assert_eq!(parse_time("00:00"), Ok(0));
        assert_eq!(parse_time("23:59"), Ok(1439));
        for bad in ["24:00", "12:60", "2pm", "12", "12:5", ":30", "12:300", "-1:00", "1:2:3"] {
            assert_eq!(
                parse_time(bad),
                Err(ToolError::invalid_arguments(format!(
                    "`time` must be \"HH:MM\" in 24-hour format, e.g. \"14:30\"; got \"{bad}\""
                ))),
                "{bad}"
            );
        }
    }

    #[test]
    fn through_the_json_boundary() {
        let ctx = CallContext::default();
        let answer = plugin().call("check_business_hours", r#"{"day":"friday","time":"15:59"}"#, &ctx).unwrap();
        let answer: serde_json::Value = serde_json::from_str(&answer).unwrap();
        assert_eq!(
            answer,
            serde_json::json!({
                "day": "friday", "time": "15:59", "open": true, "hours": "09:00-16:00",
                "closes_at": "16:00", "next_opening": null,
                "summary": "Open on Friday at 15:59; closes at 16:00."
            })
        );
        // No arguments: now.
        assert!(plugin().call("check_business_hours", "{}", &ctx).is_ok());
        assert!(matches!(
            plugin().call("check_business_hours", r#"{"time":"25:00"}"#, &ctx),
            Err(ToolError::InvalidArguments(_))
        ));
    }
}
