package api

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lumenhq/lumen/serving"
	"github.com/lumenhq/lumen/serving/dashboard"
)

// ErrorResponse is the body of every 4xx and 5xx answer.
type ErrorResponse struct {
	// Error says what is wrong, naming the parameter when there is one.
	Error string `json:"error"`
	// Param is the (first) parameter at fault, if any.
	Param string `json:"param,omitempty"`
	// Problems lists every bad parameter of a 400.
	Problems []*ParamError `json:"problems,omitempty"`
}

// Handler serves the API, the dashboard, /healthz, /readyz and /metrics.
type Handler struct {
	svc *Service
	log *slog.Logger
	m   *metrics
	mux *http.ServeMux
}

// NewHandler returns the HTTP handler of svc. It logs one line per request
// to log, and registers its metrics with reg (nil: a registry of its own,
// with the Go and process collectors), served on /metrics.
func NewHandler(svc *Service, log *slog.Logger, reg *prometheus.Registry) *Handler {
	h := &Handler{svc: svc, log: log, m: newMetrics(reg), mux: http.NewServeMux()}
	route := func(path string, fn func(*http.Request, url.Values) (any, error)) {
		h.mux.Handle(path, h.instrument(path, func(w http.ResponseWriter, r *http.Request) { h.api(w, r, fn) }))
	}
	route("/v1/counts", func(r *http.Request, v url.Values) (any, error) {
		return answer(r.Context(), v, ParseCounts, svc.Counts)
	})
	route("/v1/late", func(r *http.Request, v url.Values) (any, error) {
		return answer(r.Context(), v, ParseCounts, svc.Late)
	})
	route("/v1/users", func(r *http.Request, v url.Values) (any, error) {
		return answer(r.Context(), v, ParseUsers, svc.Users)
	})
	route("/v1/active", func(r *http.Request, v url.Values) (any, error) {
		parse := func(v url.Values) (ActiveRequest, error) { return ParseActive(v, svc.now()) }
		return answer(r.Context(), v, parse, svc.Active)
	})
	route("/v1/crash-free", func(r *http.Request, v url.Values) (any, error) {
		return answer(r.Context(), v, ParseCrashFree, svc.CrashFree)
	})
	route("/v1/apps", func(r *http.Request, v url.Values) (any, error) {
		if err := ParseNone(v); err != nil {
			return nil, err
		}
		return svc.Apps(r.Context())
	})
	route("/healthz", func(r *http.Request, v url.Values) (any, error) {
		return map[string]string{"status": "ok"}, ParseNone(v)
	})
	route("/readyz", func(r *http.Request, v url.Values) (any, error) {
		if err := ParseNone(v); err != nil {
			return nil, err
		}
		if err := svc.Ready(r.Context()); err != nil {
			return nil, fmt.Errorf("api: the store does not answer: %w", errNotReady{err})
		}
		return map[string]string{"status": "ready"}, nil
	})
	h.mux.Handle("/metrics", h.instrument("/metrics", h.m.handler().ServeHTTP))
	static := dashboard.Handler()
	h.mux.Handle("/", h.instrument("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" && r.URL.Path != "/index.html" && !dashboard.Has(r.URL.Path) {
			h.fail(w, r, http.StatusNotFound, ErrorResponse{Error: fmt.Sprintf("no such page %s (the API is under /v1/)", quote(r.URL.Path))})
			return
		}
		static.ServeHTTP(w, r)
	}))
	return h
}

// errNotReady marks a failed readiness check (503).
type errNotReady struct{ err error }

func (e errNotReady) Error() string { return e.err.Error() }
func (e errNotReady) Unwrap() error { return e.err }

// answer parses v and, if it is valid, answers it.
func answer[Req, Resp any](ctx context.Context, v url.Values, parse func(url.Values) (Req, error), fn func(context.Context, Req) (Resp, error)) (any, error) {
	req, err := parse(v)
	if err != nil {
		return nil, err
	}
	return fn(ctx, req)
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

// api runs one JSON endpoint: method and query-string checks, then fn,
// then the answer or the classified error.
func (h *Handler) api(w http.ResponseWriter, r *http.Request, fn func(*http.Request, url.Values) (any, error)) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		h.fail(w, r, http.StatusMethodNotAllowed, ErrorResponse{Error: fmt.Sprintf("method %s: the API is read-only, use GET", r.Method)})
		return
	}
	if n := len(r.URL.RawQuery); n > MaxQueryBytes {
		h.fail(w, r, http.StatusRequestURITooLong, ErrorResponse{Error: fmt.Sprintf("the query string is %d bytes; at most %d", n, MaxQueryBytes), Param: "query"})
		return
	}
	v, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		h.fail(w, r, http.StatusBadRequest, ErrorResponse{Error: "the query string is malformed: " + err.Error(), Param: "query"})
		return
	}
	// Scope first: an app outside the key's scope gets the same 403
	// whatever else the request says, and whether or not the app exists.
	if err := allow(r.Context(), v.Get("app")); v.Has("app") && err != nil {
		h.error(w, r, err)
		return
	}
	ctx, ages := serving.WithReadAges(r.Context())
	resp, err := fn(r.WithContext(ctx), v)
	if err != nil {
		h.error(w, r, err)
		return
	}
	b, err := json.Marshal(resp)
	if err != nil {
		h.log.Error("encoding a response", "err", err)
		h.fail(w, r, http.StatusInternalServerError, ErrorResponse{Error: "internal error (logged by the server)"})
		return
	}
	// The answer may change with every batch run and stream firing, and
	// is the key's own: a client revalidates each time (ETag, 304), and no
	// shared cache keeps it.
	sum := sha256.Sum256(b)
	etag := `"` + hex.EncodeToString(sum[:12]) + `"`
	hd := w.Header()
	hd.Set("ETag", etag)
	hd.Set("Cache-Control", "private, no-cache")
	hd.Set("Vary", "Authorization")
	if at, ok := ages.Oldest(); ok {
		// How old the oldest speed-layer read in the answer is.
		hd.Set(SpeedAgeHeader, strconv.FormatFloat(max(0, time.Since(at).Seconds()), 'f', 3, 64))
	}
	if etagMatch(r.Header.Get("If-None-Match"), etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	h.writeBytes(w, http.StatusOK, b)
}

// SpeedAgeHeader says, in seconds, how old the oldest speed-layer read of
// an answer is: at most the server's --speed_cache.
const SpeedAgeHeader = "Lumen-Speed-Age"

// etagMatch reports whether an If-None-Match header names etag (or is *).
func etagMatch(header, etag string) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimSpace(t)
		if t == "*" || strings.TrimPrefix(t, "W/") == etag {
			return true
		}
	}
	return false
}

// error answers err with its status: 400 for bad parameters, 403 for an
// app outside the request's key, 404 for an unknown app, 503 for a store call or a request that ran out of time and
// for a store that is not ready, 500 for anything else (logged; its text
// is not shown to the client).
func (h *Handler) error(w http.ResponseWriter, r *http.Request, err error) {
	var bad *BadRequestError
	var nf *NotFoundError
	var fb *ForbiddenError
	var nr errNotReady
	switch {
	case errors.As(err, &bad):
		h.fail(w, r, http.StatusBadRequest, ErrorResponse{Error: bad.Error(), Param: bad.Problems[0].Param, Problems: bad.Problems})
	case errors.As(err, &fb):
		h.fail(w, r, http.StatusForbidden, ErrorResponse{Error: fb.Error(), Param: "app"})
	case errors.As(err, &nf):
		h.fail(w, r, http.StatusNotFound, ErrorResponse{Error: nf.Error(), Param: nf.Param})
	case serving.IsTimeout(err):
		h.m.timeouts.Inc()
		h.log.Warn("store timeout", "path", r.URL.Path, "err", err)
		w.Header().Set("Retry-After", "1")
		h.fail(w, r, http.StatusServiceUnavailable, ErrorResponse{Error: "the store did not answer in time; try again"})
	case errors.As(err, &nr):
		h.log.Warn("not ready", "err", err)
		h.fail(w, r, http.StatusServiceUnavailable, ErrorResponse{Error: "the store does not answer"})
	case errors.Is(err, context.DeadlineExceeded) && errors.Is(r.Context().Err(), context.DeadlineExceeded):
		// The request's own deadline (Limits.RequestTimeout) ran out.
		h.m.timeouts.Inc()
		h.log.Warn("request deadline", "path", r.URL.Path, "err", err)
		w.Header().Set("Retry-After", "1")
		h.fail(w, r, http.StatusServiceUnavailable, ErrorResponse{Error: "the answer took longer than the request's time limit; try again"})
	case errors.Is(err, context.Canceled) && r.Context().Err() != nil:
		// The client went away; nobody reads the answer.
		h.fail(w, r, 499, ErrorResponse{Error: "request cancelled"})
	default:
		h.log.Error("request failed", "path", r.URL.Path, "query", truncate(r.URL.RawQuery, 256), "err", err)
		h.fail(w, r, http.StatusInternalServerError, ErrorResponse{Error: "internal error (logged by the server)"})
	}
}

func (h *Handler) fail(w http.ResponseWriter, _ *http.Request, status int, body ErrorResponse) {
	w.Header().Set("Cache-Control", "no-store")
	h.write(w, status, body)
}

func (h *Handler) write(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":"internal error (logged by the server)"}`)
		h.log.Error("encoding a response", "err", err)
	}
	h.writeBytes(w, status, b)
}

func (h *Handler) writeBytes(w http.ResponseWriter, status int, b []byte) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)+1))
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

// statusWriter records what a handler answered, for the log line and the
// metrics.
type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int
}

func (s *statusWriter) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	n, err := s.ResponseWriter.Write(b)
	s.bytes += n
	return n, err
}

// instrument logs one line per request with its latency and records the
// request in the metrics under route (a fixed label: never the raw path).
func (h *Handler) instrument(route string, fn http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		fn(sw, r)
		if sw.status == 0 {
			sw.status = http.StatusOK
		}
		d := time.Since(start)
		h.m.observe(route, sw.status, d)
		attrs := []any{"method", r.Method, "path", r.URL.Path, "query", truncate(r.URL.RawQuery, 256),
			"status", sw.status, "bytes", sw.bytes, "latency", d.Round(time.Microsecond), "remote", r.RemoteAddr}
		if k := KeyOf(r.Context()); k != nil {
			attrs = append(attrs, "key", k.ID) // the id, never the secret
		}
		h.log.Info("request", attrs...)
	})
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// Stack is query serve's handler: the guard, then the global limits, then
// the keys (none if auth is nil), then h.
func Stack(h http.Handler, g Guard, l Limits, auth *Auth) http.Handler {
	if auth != nil {
		h = auth.Wrap(h)
	}
	return g.Wrap(l.Wrap(h))
}

// DefaultAddr is where `query serve` listens by default: loopback only, so
// an operator opens it to the network on purpose.
const DefaultAddr = "127.0.0.1:8080"

// Serve serves h on ln until ctx is done, then shuts down gracefully:
// it stops accepting, lets requests in flight finish for up to grace, and
// returns nil after a clean shutdown.
func Serve(ctx context.Context, ln net.Listener, h http.Handler, log *slog.Logger, grace time.Duration) error {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("api: serving %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	log.Info("shutting down", "addr", ln.Addr().String(), "grace", grace)
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("api: shutdown: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	log.Info("stopped")
	return nil
}
