// Package api is lumen's query API: parsing and validating a request's
// parameters, answering it from a serving.Querier (both layers merged,
// every point labelled), and the HTTP server and dashboard behind
// `query serve`. The `query` CLI subcommands call the same Parse and
// Service functions as the HTTP handlers, so the two cannot disagree.
//
// It is not for merging layers (serving.Querier does) or for parsing
// flags (cmd/query turns flags into the same url.Values a handler reads).
package api

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/lumenhq/lumen/aggregate"
	"github.com/lumenhq/lumen/event"
	"github.com/lumenhq/lumen/serving"
)

// NotFoundError is a request for something the store does not know, such
// as an app with no rows in either layer (HTTP 404).
type NotFoundError struct {
	Param   string `json:"param"`
	Message string `json:"message"`
}

func (e *NotFoundError) Error() string { return e.Param + ": " + e.Message }

// Service answers API requests from a Querier. It is safe for concurrent
// use.
type Service struct {
	q   *serving.Querier
	now func() time.Time // "today" for /v1/active's default date
	ttl time.Duration

	mu      sync.Mutex
	apps    []serving.AppInfo
	appsAt  time.Time
	refresh sync.Mutex // one catalog read at a time
}

// catalogTTL is how long the list of known apps is reused before it is
// read again. A request naming an app not in the list reads it again at
// once if the list is older than a second, so a new app is found without
// waiting.
const catalogTTL = 30 * time.Second

// NewService returns a Service over q.
func NewService(q *serving.Querier) *Service {
	return &Service{q: q, now: time.Now, ttl: catalogTTL}
}

// Querier is the querier the service answers from.
func (s *Service) Querier() *serving.Querier { return s.q }

// catalog returns the known apps. A list older than s.ttl is still
// answered, while one background read replaces it, so that requests never
// queue behind the periodic refresh; a list older than maxAge < s.ttl
// (an app not in it was asked for) is read again before answering.
func (s *Service) catalog(ctx context.Context, maxAge time.Duration) ([]serving.AppInfo, error) {
	s.mu.Lock()
	apps, at := s.apps, s.appsAt
	s.mu.Unlock()
	if apps != nil && time.Since(at) <= maxAge {
		return apps, nil
	}
	if apps != nil && maxAge >= s.ttl {
		if s.refresh.TryLock() {
			go func() {
				defer s.refresh.Unlock()
				s.readCatalog(context.WithoutCancel(ctx), maxAge)
			}()
		}
		return apps, nil
	}
	s.refresh.Lock()
	defer s.refresh.Unlock()
	return s.readCatalog(ctx, maxAge)
}

// readCatalog reads the apps and keeps them, unless another request just
// did; the caller holds s.refresh.
func (s *Service) readCatalog(ctx context.Context, maxAge time.Duration) ([]serving.AppInfo, error) {
	s.mu.Lock()
	apps, at := s.apps, s.appsAt
	s.mu.Unlock()
	if apps != nil && time.Since(at) <= maxAge {
		return apps, nil
	}
	apps, err := s.q.Apps(ctx, s.now())
	if err != nil {
		return nil, err
	}
	if apps == nil {
		apps = []serving.AppInfo{}
	}
	s.mu.Lock()
	s.apps, s.appsAt = apps, time.Now()
	s.mu.Unlock()
	return apps, nil
}

// app returns the catalog entry of id, a ForbiddenError if the request's
// key may not read it (whether or not it exists), or a NotFoundError.
func (s *Service) app(ctx context.Context, id string) (serving.AppInfo, error) {
	if err := allow(ctx, id); err != nil {
		return serving.AppInfo{}, err
	}
	find := func(apps []serving.AppInfo) (serving.AppInfo, bool) {
		i, ok := slices.BinarySearchFunc(apps, id, func(a serving.AppInfo, id string) int { return strings.Compare(a.AppID, id) })
		if !ok {
			return serving.AppInfo{}, false
		}
		return apps[i], true
	}
	apps, err := s.catalog(ctx, s.ttl)
	if err != nil {
		return serving.AppInfo{}, err
	}
	if a, ok := find(apps); ok {
		return a, nil
	}
	if apps, err = s.catalog(ctx, min(s.ttl, time.Second)); err != nil {
		return serving.AppInfo{}, err
	}
	if a, ok := find(apps); ok {
		return a, nil
	}
	return serving.AppInfo{}, &NotFoundError{Param: "app", Message: fmt.Sprintf("no app %s in either layer (GET /v1/apps lists the known apps)", quote(id))}
}

// Point is one bucket of a series, with the layer that answered.
type Point struct {
	Bucket time.Time `json:"bucket"`
	Count  int64     `json:"count"`
	Layer  string    `json:"layer"`
}

// Boundary is where the batch layer ends, for one kind.
type Boundary struct {
	// Watermark is the day (YYYY-MM-DD) through which the batch layer is
	// complete (serving.BatchComplete); null if no batch run has
	// completed. The name is API v1's and is kept: it is the batch
	// layer's watermark, not the stream's event-time watermark.
	Watermark *string `json:"watermark"`
	// SpeedFrom is the first instant answered by the speed layer (the
	// midnight after the watermark); null if everything is speed.
	SpeedFrom *time.Time `json:"speed_from"`
}

func boundary(w serving.BatchComplete) Boundary {
	if !w.OK() {
		return Boundary{}
	}
	d, c := w.Day.Format(time.DateOnly), w.Cutoff()
	return Boundary{Watermark: &d, SpeedFrom: &c}
}

// CountsResponse is the answer of /v1/counts.
type CountsResponse struct {
	Kind        string    `json:"kind"`
	App         string    `json:"app"`
	Version     string    `json:"version"`
	Granularity string    `json:"granularity"`
	From        time.Time `json:"from"`
	To          time.Time `json:"to"`
	Boundary
	// Points are ascending, one per bucket with events.
	Points []Point `json:"points"`
}

func points(pts []serving.CountPoint) []Point {
	out := make([]Point, len(pts))
	for i, p := range pts {
		out[i] = Point{Bucket: p.Bucket, Count: p.Count, Layer: p.Layer.String()}
	}
	return out
}

// Counts answers a counts request: batch buckets up to the watermark,
// speed buckets after, each labelled.
func (s *Service) Counts(ctx context.Context, r CountsRequest) (CountsResponse, error) {
	if _, err := s.app(ctx, r.App); err != nil {
		return CountsResponse{}, err
	}
	pts, w, err := s.q.CountsAt(ctx, serving.CountQuery{Kind: r.Kind, AppID: r.App, Version: r.Version, Gran: r.Gran, From: r.From, To: r.To})
	if err != nil {
		return CountsResponse{}, err
	}
	return CountsResponse{Kind: r.Kind.String(), App: r.App, Version: r.Version, Granularity: r.Gran.String(),
		From: r.From, To: r.To, Boundary: boundary(w), Points: points(pts)}, nil
}

// LatePoint is one bucket of the late-data ledger.
type LatePoint struct {
	Bucket time.Time `json:"bucket"`
	Count  int64     `json:"count"`
	// Pending is true for a bucket after the watermark: its dropped events
	// will arrive with the next batch run. A bucket on or before it has
	// been recounted by the batch already.
	Pending bool `json:"pending"`
}

// LateResponse is the answer of /v1/late.
type LateResponse struct {
	Kind        string    `json:"kind"`
	App         string    `json:"app"`
	Version     string    `json:"version"`
	Granularity string    `json:"granularity"`
	From        time.Time `json:"from"`
	To          time.Time `json:"to"`
	Boundary
	// Total is every event the speed layer dropped as late in the range;
	// Pending those of them in buckets after the watermark: "N events will
	// arrive with tonight's batch".
	Total   int64       `json:"total"`
	Pending int64       `json:"pending"`
	Points  []LatePoint `json:"points"`
}

// Late answers a late-ledger request.
func (s *Service) Late(ctx context.Context, r CountsRequest) (LateResponse, error) {
	if _, err := s.app(ctx, r.App); err != nil {
		return LateResponse{}, err
	}
	pts, w, err := s.q.Late(ctx, serving.CountQuery{Kind: r.Kind, AppID: r.App, Version: r.Version, Gran: r.Gran, From: r.From, To: r.To})
	if err != nil {
		return LateResponse{}, err
	}
	resp := LateResponse{Kind: r.Kind.String(), App: r.App, Version: r.Version, Granularity: r.Gran.String(),
		From: r.From, To: r.To, Boundary: boundary(w), Points: make([]LatePoint, len(pts))}
	for i, p := range pts {
		pending := w.LayerOf(p.Bucket) == serving.Speed
		resp.Points[i] = LatePoint{Bucket: p.Bucket, Count: p.Count, Pending: pending}
		resp.Total += p.Count
		if pending {
			resp.Pending += p.Count
		}
	}
	return resp, nil
}

// DayUsers is one day's distinct devices, with the layer that answered.
type DayUsers struct {
	Day      string `json:"day"`
	Estimate int64  `json:"estimate"`
	Layer    string `json:"layer"`
}

// UsersResponse is the answer of /v1/users.
type UsersResponse struct {
	Kind    string `json:"kind"`
	App     string `json:"app"`
	Version string `json:"version"`
	From    string `json:"from"`
	To      string `json:"to"`
	// Estimate is the distinct devices over the whole range, from the
	// merged daily sketches.
	Estimate int64 `json:"estimate"`
	// RelativeError is the estimate's relative standard error (0.0081 at
	// precision 14); about 95 % of estimates are within twice it.
	RelativeError float64 `json:"relative_error"`
	BatchDays     int     `json:"batch_days"`
	SpeedDays     int     `json:"speed_days"`
	Boundary
	// Days are the distinct devices of each day with any (DAU), ascending.
	Days []DayUsers `json:"days"`
}

// Users answers a users request.
func (s *Service) Users(ctx context.Context, r UsersRequest) (UsersResponse, error) {
	if _, err := s.app(ctx, r.App); err != nil {
		return UsersResponse{}, err
	}
	uq := serving.UserQuery{Kind: r.Kind, AppID: r.App, Version: r.Version, From: r.From, To: r.To}
	days, total, w, err := s.q.Daily(ctx, uq)
	if err != nil {
		return UsersResponse{}, err
	}
	resp := UsersResponse{Kind: r.Kind.String(), App: r.App, Version: r.Version, From: r.From.Format(time.DateOnly), To: r.To.Format(time.DateOnly),
		Estimate: total.Estimate, RelativeError: total.RelError, BatchDays: total.BatchDays, SpeedDays: total.SpeedDays,
		Boundary: boundary(w), Days: make([]DayUsers, len(days))}
	for i, d := range days {
		resp.Days[i] = DayUsers{Day: d.Day.Format(time.DateOnly), Estimate: d.Estimate, Layer: d.Layer.String()}
	}
	return resp, nil
}

// RangeUsers is the distinct devices over a range of days ending with a
// date.
type RangeUsers struct {
	From          string  `json:"from"`
	To            string  `json:"to"`
	Estimate      int64   `json:"estimate"`
	RelativeError float64 `json:"relative_error"`
	BatchDays     int     `json:"batch_days"`
	SpeedDays     int     `json:"speed_days"`
}

func rangeUsers(u serving.UsersResult) RangeUsers {
	return RangeUsers{From: u.From.Format(time.DateOnly), To: u.To.Format(time.DateOnly), Estimate: u.Estimate,
		RelativeError: u.RelError, BatchDays: u.BatchDays, SpeedDays: u.SpeedDays}
}

// ActiveResponse is the answer of /v1/active.
type ActiveResponse struct {
	Kind    string `json:"kind"`
	App     string `json:"app"`
	Version string `json:"version"`
	Date    string `json:"date"`
	Boundary
	DAU RangeUsers `json:"dau"`
	WAU RangeUsers `json:"wau"`
	MAU RangeUsers `json:"mau"`
}

// Active answers an active-users request: DAU, WAU and MAU of the date.
func (s *Service) Active(ctx context.Context, r ActiveRequest) (ActiveResponse, error) {
	if _, err := s.app(ctx, r.App); err != nil {
		return ActiveResponse{}, err
	}
	a, err := s.q.ActiveUsers(ctx, r.Kind, r.App, r.Version, r.Date)
	if err != nil {
		return ActiveResponse{}, err
	}
	return ActiveResponse{Kind: r.Kind.String(), App: r.App, Version: r.Version, Date: r.Date.Format(time.DateOnly),
		Boundary: boundary(a.Batch), DAU: rangeUsers(a.DAU), WAU: rangeUsers(a.WAU), MAU: rangeUsers(a.MAU)}, nil
}

// CrashFreeVersion is the crash-free users of one version.
type CrashFreeVersion struct {
	// Version is "" for the app as a whole.
	Version string `json:"version"`
	Active  int64  `json:"active"`
	Crashed int64  `json:"crashed"`
	// CrashFree is 1 − crashed/active in [0, 1].
	CrashFree float64 `json:"crash_free"`
	// ErrorBound bounds |crash_free − exact| with 95 % confidence, from
	// the sketches' error: 2·√2·ε·crashed/active with ε = 1.04/√(2^p)
	// (0.81 % at p = 14), so at most 0.023 and far less for a healthy app.
	ErrorBound float64 `json:"error_bound"`
}

// CrashFreeResponse is the answer of /v1/crash-free.
type CrashFreeResponse struct {
	App  string `json:"app"`
	From string `json:"from"`
	To   string `json:"to"`
	Boundary
	// Versions holds the app as a whole first, then each version with
	// rows in either layer (or only the requested one).
	Versions []CrashFreeVersion `json:"versions"`
	// Truncated is true if the app has more than MaxVersions versions and
	// only the newest-sorting ones are listed.
	Truncated bool `json:"truncated"`
}

// CrashFree answers a crash-free request.
func (s *Service) CrashFree(ctx context.Context, r CrashFreeRequest) (CrashFreeResponse, error) {
	info, err := s.app(ctx, r.App)
	if err != nil {
		return CrashFreeResponse{}, err
	}
	resp := CrashFreeResponse{App: r.App, From: r.From.Format(time.DateOnly), To: r.To.Format(time.DateOnly)}
	versions := info.Versions
	if len(versions) > MaxVersions {
		versions, resp.Truncated = versions[len(versions)-MaxVersions:], true
	}
	var cf []serving.CrashFree
	var w serving.BatchComplete
	if r.Version != aggregate.AllVersions {
		cf, w, err = s.q.CrashFreeUsers(ctx, r.App, []string{r.Version}, r.From, r.To)
		cf = cf[1:] // only the version asked for
	} else {
		cf, w, err = s.q.CrashFreeUsers(ctx, r.App, versions, r.From, r.To)
	}
	if err != nil {
		return CrashFreeResponse{}, err
	}
	resp.Boundary = boundary(w)
	for _, c := range cf {
		resp.Versions = append(resp.Versions, CrashFreeVersion{Version: c.Version, Active: c.Active, Crashed: c.Crashed, CrashFree: c.Rate, ErrorBound: c.ErrorBound})
	}
	return resp, nil
}

// AppEntry is one app of /v1/apps.
type AppEntry struct {
	App      string   `json:"app"`
	Versions []string `json:"versions"`
	Layers   []string `json:"layers"`
}

// AppsResponse is the answer of /v1/apps.
type AppsResponse struct {
	Apps []AppEntry `json:"apps"`
	// Truncated is true if there are more than MaxApps apps and only the
	// first ones (by id) are listed.
	Truncated bool `json:"truncated"`
}

// Apps lists the apps with rows in either layer over the last
// serving.CatalogMonths months, with their versions: those the request's
// key may read (WithKey), or all of them without a key.
func (s *Service) Apps(ctx context.Context) (AppsResponse, error) {
	apps, err := s.catalog(ctx, s.ttl)
	if err != nil {
		return AppsResponse{}, err
	}
	if k := KeyOf(ctx); k != nil {
		var mine []serving.AppInfo
		for _, a := range apps {
			if k.Allows(a.AppID) {
				mine = append(mine, a)
			}
		}
		apps = mine
	}
	resp := AppsResponse{Apps: []AppEntry{}}
	if len(apps) > MaxApps {
		apps, resp.Truncated = apps[:MaxApps], true
	}
	resp.Apps = make([]AppEntry, len(apps))
	for i, a := range apps {
		e := AppEntry{App: a.AppID, Versions: a.Versions, Layers: make([]string, len(a.Layers))}
		if e.Versions == nil {
			e.Versions = []string{}
		}
		for j, l := range a.Layers {
			e.Layers[j] = l.String()
		}
		resp.Apps[i] = e
	}
	return resp, nil
}

// Ready reports whether the store answers (a batch_runs read).
func (s *Service) Ready(ctx context.Context) error {
	_, err := s.q.BatchComplete(ctx, event.AppLoad)
	return err
}
