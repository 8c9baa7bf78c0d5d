//! `book_appointment`: books a slot in a calendar service over HTTP, the
//! example of a plugin with capabilities.
//!
//! Everything it may touch is granted in `plugins/book_appointment.toml`:
//! the calendar's host (`[http] allowed_hosts`), its base URL (`[config]
//! base_url`) and its API key (`[secrets] api_key`, read by Switchboard from
//! the `CALENDAR_API_KEY` environment variable).
//!
//! The calendar API it speaks (a bearer token on every request):
//!
//! - `GET  {base_url}/availability?date=YYYY-MM-DD` →
//!   `{"date": "...", "slots": ["09:00", "09:30", ...]}` (the free ones);
//! - `POST {base_url}/bookings` with `{"date", "time", "name", "phone"}` →
//!   `201 {"id": "...", ...}`, or `409` when the slot is taken. The request
//!   carries an `Idempotency-Key` naming the tool call: a calendar that
//!   honours it answers a repeat of a booking it made with that booking
//!   (`200` or `201`), so a retried call books once even when Switchboard
//!   runs it twice (a replica that died after the calendar booked).
//!
//! Tools:
//!
//! - `check_availability {date}` → `{"date", "free_slots": [...]}`;
//! - `book_appointment {date, time, name, phone?}` → books the slot, and
//!   answers `{"confirmed": true, "booking_id", ..., "message"}` (the phone
//!   number defaults to the caller's); when it is taken, the free times that
//!   day. It asks the calendar to book rather than checking first: only the
//!   booking itself can tell a slot taken by someone else from one this very
//!   call booked before it was retried.

use switchboard_sdk::prelude::*;
use switchboard_sdk::{config, http, log};

/// Arguments of `check_availability`.
#[derive(Debug, Deserialize, JsonSchema)]
struct AvailabilityArgs {
    /// The day, as YYYY-MM-DD
    date: String,
}

/// Arguments of `book_appointment`.
#[derive(Debug, Deserialize, JsonSchema)]
struct BookingArgs {
    /// The day, as YYYY-MM-DD
    date: String,
    /// Start time, as HH:MM (24-hour)
    time: String,
    /// Who the appointment is for
    name: String,
    /// Phone number to confirm to; the caller's number when left out
    phone: Option<String>,
}

/// What the calendar answers for a day.
#[derive(Debug, Deserialize)]
struct Availability {
    slots: Vec<String>,
}

/// What the calendar answers for a booking.
#[derive(Debug, Deserialize)]
struct Booking {
    id: String,
}

/// The answer to `check_availability`.
#[derive(Debug, Serialize)]
struct FreeSlots {
    date: String,
    free_slots: Vec<String>,
}

/// The answer to `book_appointment`.
#[derive(Debug, Serialize, PartialEq)]
struct Confirmation {
    confirmed: bool,
    booking_id: String,
    date: String,
    time: String,
    name: String,
    message: String,
}

/// The calendar service, as configured in the manifest.
struct Calendar {
    base_url: String,
    api_key: config::Secret,
}

impl Calendar {
    fn from_config() -> Result<Self, ToolError> {
        let base_url = config::get("base_url")?.trim_end_matches('/').to_owned();
        Ok(Self { base_url, api_key: config::secret("api_key")? })
    }

    fn free_slots(&self, date: &str) -> Result<Vec<String>, ToolError> {
        let url = format!("{}/availability?date={date}", self.base_url);
        let response = http::Request::get(url).bearer_auth(self.api_key.expose()).send()?;
        check_status(&response)?;
        Ok(response.json::<Availability>()?.slots)
    }

    fn book(&self, args: &BookingArgs, phone: Option<&str>, ctx: &CallContext) -> Result<http::Response, ToolError> {
        let body = serde_json::json!({ "date": args.date, "time": args.time, "name": args.name, "phone": phone });
        let request = http::Request::post(format!("{}/bookings", self.base_url))
            .bearer_auth(self.api_key.expose())
            .idempotency_key(ctx);
        Ok(request.json(&body)?.send()?)
    }
}

/// Turns a calendar error status into a message for the LLM.
fn check_status(response: &http::Response) -> Result<(), ToolError> {
    match response.status {
        200..=299 => Ok(()),
        401 | 403 => Err(ToolError::failed("the calendar refused our credentials; ask a person to check the set-up")),
        status => Err(ToolError::failed(format!("the calendar is not available right now (status {status})"))),
    }
}

/// `YYYY-MM-DD` with a plausible month and day.
fn valid_date(date: &str) -> bool {
    let parts: Vec<&str> = date.split('-').collect();
    let number = |s: &str, len: usize| s.len() == len && s.bytes().all(|b| b.is_ascii_digit());
    matches!(parts.as_slice(), [y, m, d] if number(y, 4) && number(m, 2) && number(d, 2)
        && (1..=12).contains(&m.parse::<u8>().unwrap_or(0))
        && (1..=31).contains(&d.parse::<u8>().unwrap_or(0)))
}

/// `HH:MM`, 24-hour.
fn valid_time(time: &str) -> bool {
    match time.split_once(':') {
        Some((h, m)) if h.len() == 2 && m.len() == 2 => {
            h.parse::<u8>().is_ok_and(|h| h < 24) && m.parse::<u8>().is_ok_and(|m| m < 60)
        }
        _ => false,
    }
}

fn check_date(date: &str) -> Result<(), ToolError> {
    if valid_date(date) {
        Ok(())
    } else {
        Err(ToolError::invalid_arguments(format!("`date` must be YYYY-MM-DD, like 2025-12-15, not {date:?}")))
    }
}

fn check_availability(args: AvailabilityArgs, _ctx: &CallContext) -> Result<FreeSlots, ToolError> {
    check_date(&args.date)?;
    let free_slots = Calendar::from_config()?.free_slots(&args.date)?;
    if free_slots.is_empty() {
        return Err(ToolError::not_found(format!("There are no free slots on {}.", args.date)));
    }
    Ok(FreeSlots { date: args.date, free_slots })
}

fn book_appointment(args: BookingArgs, ctx: &CallContext) -> Result<Confirmation, ToolError> {
    check_date(&args.date)?;
    if !valid_time(&args.time) {
        return Err(ToolError::invalid_arguments(format!("`time` must be HH:MM, like 14:30, not {:?}", args.time)));
    }
    if args.name.trim().is_empty() {
        return Err(ToolError::invalid_arguments("`name` must not be empty"));
    }
    let calendar = Calendar::from_config()?;
    let phone = args.phone.as_deref().or(ctx.customer_number.as_deref());
    let response = calendar.book(&args, phone, ctx)?;
    if response.status == 409 {
        let free = calendar.free_slots(&args.date).unwrap_or_default();
        return Err(not_free(&args, &free));
    }
    check_status(&response)?;
    let booking: Booking = response.json()?;
    log::info(format!("booked {} on {} at {}", booking.id, args.date, args.time));
    Ok(confirmation(booking.id, args))
}

fn not_free(args: &BookingArgs, free: &[String]) -> ToolError {
    if free.is_empty() {
        ToolError::not_found(format!("{} on {} is not free, and nothing else is free that day.", args.time, args.date))
    } else {
        ToolError::not_found(format!("{} on {} is not free. Free times: {}.", args.time, args.date, free.join(", ")))
    }
}

fn confirmation(booking_id: String, args: BookingArgs) -> Confirmation {
    let message = format!("Booked {} on {} at {}.", args.name, args.date, args.time);
    Confirmation { confirmed: true, booking_id, date: args.date, time: args.time, name: args.name, message }
}

switchboard_sdk::plugin! {
    tool "check_availability" => check_availability, "List the free appointment times on a day";
    tool "book_appointment" => book_appointment, "Book an appointment at a free time and confirm it";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_times_are_checked_before_any_request() {
        assert!(valid_date("2025-12-15") && !valid_date("2025-13-01") && !valid_date("15-12-2025"));
        assert!(valid_time("09:30") && valid_time("23:59") && !valid_time("24:00") && !valid_time("9:30"));
        let ctx = CallContext::default();
        let bad = plugin().call("book_appointment", r#"{"date":"tomorrow","time":"10:00","name":"Jan"}"#, &ctx);
        assert!(matches!(bad, Err(ToolError::InvalidArguments(m)) if m.contains("YYYY-MM-DD")));
        let bad = plugin().call("book_appointment", r#"{"date":"2025-12-15","time":"10am","name":"Jan"}"#, &ctx);
        assert!(matches!(bad, Err(ToolError::InvalidArguments(m)) if m.contains("HH:MM")));
    }

    #[test]
    fn natively_the_calendar_is_out_of_reach() {
        let answer = plugin().call("check_availability", r#"{"date":"2025-12-15"}"#, &CallContext::default());
        assert_eq!(answer, Err(ToolError::failed("configuration is only available inside Switchboard")));
    }

    #[test]
    fn messages_for_the_llm() {
        let args = BookingArgs { date: "2025-12-15".into(), time: "10:00".into(), name: "Jan".into(), phone: None };
        assert_eq!(
            not_free(&args, &["11:00".into(), "11:30".into()]),
            ToolError::not_found("10:00 on 2025-12-15 is not free. Free times: 11:00, 11:30.")
        );
        assert_eq!(confirmation("bk_1".into(), args).message, "Booked Jan on 2025-12-15 at 10:00.");
    }
}
