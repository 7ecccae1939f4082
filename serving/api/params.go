package api

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/lumenhq/lumen/aggregate"
	"github.com/lumenhq/lumen/event"
)

// Limits on what one request may ask for. They bound the rows a store call
// reads and the points a response carries.
const (
	// MaxMinuteDays, MaxHourDays and MaxDayDays bound a counts or late
	// range by granularity: 7 days of minutes (10,080 points), 92 of
	// hours (2,208) and 400 of days.
	MaxMinuteDays = 7
	MaxHourDays   = 92
	MaxDayDays    = 400
	// MaxUserDays bounds a users or crash-free range: each day is a
	// sketch of up to 12 KiB to read and merge.
	MaxUserDays = 400
	// MaxQueryBytes bounds the raw query string (414 beyond).
	MaxQueryBytes = 2048
	// MaxVersions bounds the versions of one crash-free answer.
	MaxVersions = 100
	// MaxApps bounds the apps of one /v1/apps answer.
	MaxApps = 10_000
	// MaxAppBytes bounds an app id.
	MaxAppBytes = 128
)

// Bounds of any time a request may name: events before 2000 are invalid
// (DESIGN §1), and nothing is stored for the next century.
var (
	minTime = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	maxTime = time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)
)

// ParamError is one bad request parameter: which, and what is wrong.
type ParamError struct {
	Param   string `json:"param"`
	Message string `json:"message"`
}

func (e *ParamError) Error() string { return e.Param + ": " + e.Message }

// BadRequestError is every problem of a request's parameters (HTTP 400).
type BadRequestError struct{ Problems []*ParamError }

func (e *BadRequestError) Error() string {
	s := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		s[i] = p.Error()
	}
	return "bad request: " + strings.Join(s, "; ")
}

// params reads url.Values for one endpoint: each known parameter at most
// once, and every problem collected so the answer names them all.
type params struct {
	v        url.Values
	known    []string
	problems []*ParamError
}

func newParams(v url.Values, known ...string) *params {
	p := &params{v: v, known: known}
	var names []string
	for k := range v {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, k := range names {
		if !slices.Contains(known, k) {
			takes := "no parameters"
			if len(known) > 0 {
				takes = strings.Join(known, ", ")
			}
			p.fail(printable(k), "unknown parameter (this endpoint takes %s)", takes)
		} else if len(v[k]) > 1 {
			p.fail(k, "given %d times, want once", len(v[k]))
		}
	}
	return p
}

func (p *params) fail(param, format string, args ...any) {
	p.problems = append(p.problems, &ParamError{Param: param, Message: fmt.Sprintf(format, args...)})
}

func (p *params) failed(param string) bool {
	for _, e := range p.problems {
		if e.Param == param {
			return true
		}
	}
	return false
}

func (p *params) err() error {
	if len(p.problems) == 0 {
		return nil
	}
	return &BadRequestError{Problems: p.problems}
}

// get returns a parameter's value ("" if absent).
func (p *params) get(name string) string { return p.v.Get(name) }

// text validates a free-text identifier: UTF-8, no control characters,
// length in [minLen, maxLen] bytes.
func (p *params) text(name string, minLen, maxLen int) string {
	s := p.get(name)
	switch {
	case len(s) < minLen && minLen == 1:
		p.fail(name, "is required")
	case len(s) < minLen || len(s) > maxLen:
		p.fail(name, "is %d bytes, want %d to %d", len(s), minLen, maxLen)
	case !utf8.ValidString(s):
		p.fail(name, "is not valid UTF-8")
	case strings.IndexFunc(s, unicode.IsControl) >= 0:
		p.fail(name, "contains a control character")
	default:
		return s
	}
	return ""
}

func (p *params) kind() event.Kind {
	s := p.get("kind")
	if s == "" {
		return event.AppLoad
	}
	k, err := event.ParseKind(s)
	if err != nil {
		p.fail("kind", "%s is not a kind (want app_load, crash or handled_exception)", quote(s))
	}
	return k
}

func (p *params) granularity() aggregate.Granularity {
	s := p.get("granularity")
	if s == "" {
		return aggregate.Day
	}
	g, err := aggregate.ParseGranularity(s)
	if err != nil {
		p.fail("granularity", "%s is not a granularity (want minute, hour or day)", quote(s))
	}
	return g
}

// instant parses an inclusive bound: a day (YYYY-MM-DD) or an RFC3339
// time. A day as an upper bound means the end of that day.
func (p *params) instant(name string, upper bool) time.Time {
	s := p.get(name)
	if s == "" {
		p.fail(name, "is required (YYYY-MM-DD or RFC3339)")
		return time.Time{}
	}
	var t time.Time
	if d, err := time.Parse(time.DateOnly, s); err == nil {
		t = d
		if upper {
			t = d.AddDate(0, 0, 1).Add(-time.Millisecond)
		}
	} else if x, err := time.Parse(time.RFC3339Nano, s); err == nil {
		t = x.UTC()
	} else {
		p.fail(name, "%s is neither YYYY-MM-DD nor RFC3339", quote(s))
		return time.Time{}
	}
	if t.Before(minTime) || !t.Before(maxTime) {
		p.fail(name, "%s is outside %s..%s", quote(s), minTime.Format(time.DateOnly), maxTime.AddDate(0, 0, -1).Format(time.DateOnly))
		return time.Time{}
	}
	return t
}

// day parses a day (YYYY-MM-DD); def is used when the parameter is absent
// and def is not zero.
func (p *params) day(name string, def time.Time) time.Time {
	s := p.get(name)
	if s == "" && !def.IsZero() {
		return aggregate.Day.TruncateTime(def)
	}
	if s == "" {
		p.fail(name, "is required (YYYY-MM-DD)")
		return time.Time{}
	}
	d, err := time.Parse(time.DateOnly, s)
	if err != nil {
		p.fail(name, "%s is not YYYY-MM-DD", quote(s))
		return time.Time{}
	}
	if d.Before(minTime) || !d.Before(maxTime) {
		p.fail(name, "%s is outside %s..%s", quote(s), minTime.Format(time.DateOnly), maxTime.AddDate(0, 0, -1).Format(time.DateOnly))
		return time.Time{}
	}
	return d
}

// span checks that to is not before from and that [from, to] spans at most
// maxDays days; what names the range's unit in the message.
func (p *params) span(from, to time.Time, maxDays int, what string) {
	if p.failed("from") || p.failed("to") {
		return
	}
	if to.Before(from) {
		p.fail("to", "%s is before from (%s)", to.Format(time.RFC3339), from.Format(time.RFC3339))
		return
	}
	if days := to.Sub(from).Hours() / 24; days > float64(maxDays) {
		p.fail("to", "the range from..to spans %.0f days; %s span at most %d", days, what, maxDays)
	}
}

// quote renders a user's value for a message, bounded and printable.
func quote(s string) string {
	if len(s) > 64 {
		s = s[:64] + "…"
	}
	return fmt.Sprintf("%q", s)
}

// printable renders a parameter name for a message, bounded.
func printable(s string) string {
	q := quote(s)
	return q[1 : len(q)-1]
}

// CountsRequest is a /v1/counts or /v1/late request.
type CountsRequest struct {
	Kind     event.Kind
	App      string
	Version  string
	Gran     aggregate.Granularity
	From, To time.Time // From truncated to Gran; To inclusive
}

var countsParams = []string{"kind", "app", "version", "granularity", "from", "to"}

// ParseCounts validates the parameters of /v1/counts and /v1/late (and
// `query counts`/`query late`): kind (default app_load), app (required),
// version (default all versions), granularity (minute, hour or day;
// default day), from and to (inclusive days or RFC3339 times, required),
// within the range limits of the granularity.
func ParseCounts(v url.Values) (CountsRequest, error) {
	p := newParams(v, countsParams...)
	r := CountsRequest{Kind: p.kind(), App: p.text("app", 1, MaxAppBytes), Version: p.text("version", 0, 64), Gran: p.granularity()}
	r.From, r.To = p.instant("from", false), p.instant("to", true)
	if !p.failed("granularity") {
		r.From = r.Gran.TruncateTime(r.From)
		limit := map[aggregate.Granularity]int{aggregate.Minute: MaxMinuteDays, aggregate.Hour: MaxHourDays, aggregate.Day: MaxDayDays}[r.Gran]
		p.span(r.From, r.To, limit, r.Gran.String()+" ranges")
	}
	return r, p.err()
}

// UsersRequest is a /v1/users request.
type UsersRequest struct {
	Kind     event.Kind
	App      string
	Version  string
	From, To time.Time // days, inclusive
}

// ParseUsers validates the parameters of /v1/users (and `query users`):
// kind, app, version as for counts; from and to are days (YYYY-MM-DD),
// at most MaxUserDays apart.
func ParseUsers(v url.Values) (UsersRequest, error) {
	p := newParams(v, "kind", "app", "version", "from", "to")
	r := UsersRequest{Kind: p.kind(), App: p.text("app", 1, MaxAppBytes), Version: p.text("version", 0, 64)}
	r.From, r.To = p.day("from", time.Time{}), p.day("to", time.Time{})
	p.span(r.From, r.To, MaxUserDays-1, "user ranges")
	return r, p.err()
}

// ActiveRequest is a /v1/active request.
type ActiveRequest struct {
	Kind    event.Kind
	App     string
	Version string
	Date    time.Time // a day
}

// ParseActive validates the parameters of /v1/active (and `query
// active`): kind, app, version as for counts; date a day, default today
// (UTC, by now).
func ParseActive(v url.Values, now time.Time) (ActiveRequest, error) {
	p := newParams(v, "kind", "app", "version", "date")
	r := ActiveRequest{Kind: p.kind(), App: p.text("app", 1, MaxAppBytes), Version: p.text("version", 0, 64), Date: p.day("date", now)}
	return r, p.err()
}

// CrashFreeRequest is a /v1/crash-free request.
type CrashFreeRequest struct {
	App      string
	Version  string // "" for the app and each of its versions
	From, To time.Time
}

// ParseCrashFree validates the parameters of /v1/crash-free (and `query
// crash-free`): app; version (default: the app as a whole and each
// version); from and to, days at most MaxUserDays apart.
func ParseCrashFree(v url.Values) (CrashFreeRequest, error) {
	p := newParams(v, "app", "version", "from", "to")
	r := CrashFreeRequest{App: p.text("app", 1, MaxAppBytes), Version: p.text("version", 0, 64)}
	r.From, r.To = p.day("from", time.Time{}), p.day("to", time.Time{})
	p.span(r.From, r.To, MaxUserDays-1, "crash-free ranges")
	return r, p.err()
}

// ParseNone validates that a request has no parameters (/v1/apps,
// /healthz, /readyz).
func ParseNone(v url.Values) error { return newParams(v).err() }
