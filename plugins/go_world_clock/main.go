// go_world_clock: the local time somewhere else, for a voice assistant
// ("what time is it in Tokyo?", "is the New York office open now?").
//
// A Switchboard WASI-command plugin in Go (GOOS=wasip1 GOARCH=wasm): it reads
// the call as JSON on stdin, prints its result as JSON on stdout, and exits
// non-zero with a message on stderr when the call fails. Its tools are
// declared in plugins/go_world_clock.toml, since a command cannot describe
// itself. See docs/plugins/go.md.
//
// The time zone database is compiled in (time/tzdata): a plugin has no files.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
	_ "time/tzdata"
)

// request is what Switchboard writes on stdin.
type request struct {
	Name      string          `json:"name"`
	Arguments json.RawMessage `json:"arguments"`
	Call      struct {
		ID             string `json:"id"`
		ToolCallID     string `json:"tool_call_id"`
		CustomerNumber string `json:"customer_number"`
		DeadlineMS     int64  `json:"deadline_ms"`
	} `json:"call"`
}

type localTimeArgs struct {
	Place string `json:"place"`
	// Business hours to check against, e.g. "09:00-17:30" (optional).
	OpenHours string `json:"open_hours"`
}

type localTime struct {
	Place     string `json:"place"`
	TimeZone  string `json:"time_zone"`
	Time      string `json:"time"`
	Weekday   string `json:"weekday"`
	Date      string `json:"date"`
	UTCOffset string `json:"utc_offset"`
	OpenNow   *bool  `json:"open_now,omitempty"`
	Summary   string `json:"summary"`
}

// places maps names callers say to IANA zones; anything with a "/" is taken
// as a zone name itself ("Europe/Lisbon").
var places = map[string]string{
	"amsterdam": "Europe/Amsterdam", "london": "Europe/London", "paris": "Europe/Paris",
	"berlin": "Europe/Berlin", "madrid": "Europe/Madrid", "lisbon": "Europe/Lisbon",
	"new york": "America/New_York", "chicago": "America/Chicago", "denver": "America/Denver",
	"los angeles": "America/Los_Angeles", "san francisco": "America/Los_Angeles",
	"toronto": "America/Toronto", "sao paulo": "America/Sao_Paulo", "mexico city": "America/Mexico_City",
	"tokyo": "Asia/Tokyo", "singapore": "Asia/Singapore", "hong kong": "Asia/Hong_Kong",
	"shanghai": "Asia/Shanghai", "mumbai": "Asia/Kolkata", "delhi": "Asia/Kolkata", "dubai": "Asia/Dubai",
	"sydney": "Australia/Sydney", "auckland": "Pacific/Auckland", "johannesburg": "Africa/Johannesburg",
	"utc": "UTC",
}

// toolError is a failure the LLM reads: printed on stderr, exit status 1.
type toolError string

func (e toolError) Error() string { return string(e) }

// now is the clock. A `fake_now` value (RFC 3339) in the manifest's
// [config] fixes it, for tests: command plugins receive their [config]
// values as environment variables.
func now() time.Time {
	if fixed := os.Getenv("fake_now"); fixed != "" {
		if t, err := time.Parse(time.RFC3339, fixed); err == nil {
			return t
		}
	}
	return time.Now()
}

func lookupLocalTime(args localTimeArgs) (*localTime, error) {
	place := strings.TrimSpace(args.Place)
	if place == "" {
		return nil, toolError(`invalid arguments: "place" must name a city or a time zone`)
	}
	zone, known := places[strings.ToLower(place)]
	if !known {
		if !strings.Contains(place, "/") {
			return nil, toolError(fmt.Sprintf("I do not know the time zone of %q; try a large city nearby or a zone like Europe/Amsterdam", place))
		}
		zone = place
	}
	location, err := time.LoadLocation(zone)
	if err != nil {
		return nil, toolError(fmt.Sprintf("unknown time zone %q", zone))
	}
	t := now().In(location)
	_, offset := t.Zone()
	result := &localTime{
		Place:     place,
		TimeZone:  zone,
		Time:      t.Format("15:04"),
		Weekday:   t.Weekday().String(),
		Date:      t.Format("2006-01-02"),
		UTCOffset: fmt.Sprintf("%+03d:%02d", offset/3600, abs(offset%3600)/60),
	}
	result.Summary = fmt.Sprintf("It is %s on %s in %s.", t.Format("3:04 PM"), t.Weekday(), place)
	if args.OpenHours != "" {
		open, err := within(t, args.OpenHours)
		if err != nil {
			return nil, err
		}
		result.OpenNow = &open
		if open {
			result.Summary += " That is within business hours."
		} else {
			result.Summary += " That is outside business hours."
		}
	}
	return result, nil
}

// within tells whether t (a weekday) falls in "HH:MM-HH:MM".
func within(t time.Time, hours string) (bool, error) {
	var h1, m1, h2, m2 int
	if _, err := fmt.Sscanf(hours, "%d:%d-%d:%d", &h1, &m1, &h2, &m2); err != nil || h1 > 23 || h2 > 24 || m1 > 59 || m2 > 59 {
		return false, toolError(`invalid arguments: "open_hours" must look like "09:00-17:30"`)
	}
	if t.Weekday() == time.Saturday || t.Weekday() == time.Sunday {
		return false, nil
	}
	minute := t.Hour()*60 + t.Minute()
	return minute >= h1*60+m1 && minute < h2*60+m2, nil
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}

func run(input []byte) (any, error) {
	var req request
	if err := json.Unmarshal(input, &req); err != nil {
		return nil, fmt.Errorf("the request on stdin is not JSON: %w", err)
	}
	switch req.Name {
	case "local_time":
		var args localTimeArgs
		if err := json.Unmarshal(req.Arguments, &args); err != nil {
			return nil, toolError("invalid arguments: " + err.Error())
		}
		return lookupLocalTime(args)
	default:
		return nil, toolError("unknown tool: " + req.Name)
	}
}

func main() {
	input, err := io.ReadAll(os.Stdin)
	if err == nil {
		var result any
		if result, err = run(input); err == nil {
			err = json.NewEncoder(os.Stdout).Encode(result)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
