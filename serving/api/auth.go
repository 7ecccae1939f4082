package api

import (
	"fmt"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// KeyLimits are the per-key limits of a key that sets none of its own.
type KeyLimits struct {
	Rate        float64 // requests per second, refilled continuously
	Burst       int     // requests allowed at once above the rate
	MaxInFlight int     // requests of one key answered at once
}

// DefaultKeyLimits are `query serve`'s per-key defaults.
var DefaultKeyLimits = KeyLimits{Rate: 200, Burst: 400, MaxInFlight: 32}

// Auth admits requests by API key (KeysFile):
//
//   - /v1/ needs "Authorization: Bearer <secret>": none or an unknown one
//     gets 401. The key travels in the request's context (WithKey), and
//     the Service answers only for its apps (403 for any other, whether
//     or not it exists).
//   - Each key has a token bucket (429 past its rate) and a bound on its
//     requests in flight (429 past it), both with Retry-After: one tenant
//     cannot take the server from the others.
//   - /metrics is open to loopback clients, and otherwise to a key with
//     metrics.
//   - /healthz, /readyz and the dashboard's static files are open: they
//     hold no tenant's data (the dashboard asks for a key).
//
// The keys can be replaced while serving (Load, on SIGHUP); a key that
// stays keeps its bucket. Secrets are never logged.
type Auth struct {
	limits KeyLimits
	keys   atomic.Pointer[Keys]

	mu    sync.Mutex
	state map[string]*keyState // by key id
}

type keyState struct {
	lim      *rate.Limiter
	inFlight atomic.Int64
	max      atomic.Int64 // replaced by a reload while requests run
}

// NewAuth returns an Auth over keys, with limits for keys that set none.
func NewAuth(keys *Keys, limits KeyLimits) *Auth {
	a := &Auth{limits: limits, state: map[string]*keyState{}}
	a.Load(keys)
	return a
}

// Load replaces the keys. Requests in flight finish with the key they
// started with.
func (a *Auth) Load(keys *Keys) {
	a.mu.Lock()
	defer a.mu.Unlock()
	next := map[string]*keyState{}
	for _, k := range keys.keys {
		r, b, m := k.Rate, k.Burst, k.MaxInFlight
		if r == 0 {
			r = a.limits.Rate
		}
		if b == 0 {
			b = a.limits.Burst
		}
		if m == 0 {
			m = a.limits.MaxInFlight
		}
		lim := rate.Limit(r)
		if r <= 0 || math.IsInf(r, 1) {
			lim = rate.Inf
		}
		st := a.state[k.ID]
		if st == nil {
			st = &keyState{lim: rate.NewLimiter(lim, b)}
		} else {
			st.lim.SetLimit(lim)
			st.lim.SetBurst(b)
		}
		st.max.Store(int64(m))
		next[k.ID] = st
	}
	a.state = next
	a.keys.Store(keys)
}

// Keys returns the keys in use.
func (a *Auth) Keys() *Keys { return a.keys.Load() }

func (a *Auth) stateOf(id string) *keyState {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.state[id]
}

// Wrap returns next behind the keys.
func (a *Auth) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		path := r.URL.Path
		api, metrics := strings.HasPrefix(path, "/v1/"), path == "/metrics"
		if !api && !metrics { // health checks and the dashboard's files
			next.ServeHTTP(w, r)
			return
		}
		if metrics && loopbackClient(r) {
			next.ServeHTTP(w, r)
			return
		}
		secret, ok := bearer(r)
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="lumen"`)
			refuse(w, http.StatusUnauthorized, "this server needs an API key: send Authorization: Bearer <secret>")
			return
		}
		k := a.keys.Load().Lookup(secret)
		if k == nil {
			w.Header().Set("WWW-Authenticate", `Bearer realm="lumen", error="invalid_token"`)
			refuse(w, http.StatusUnauthorized, "unknown API key")
			return
		}
		if metrics && !k.Metrics {
			refuse(w, http.StatusForbidden, fmt.Sprintf("key %s may not read /metrics", quote(k.ID)))
			return
		}
		st := a.stateOf(k.ID)
		if st == nil { // reloaded away between the lookup and now
			refuse(w, http.StatusUnauthorized, "unknown API key")
			return
		}
		if n, m := st.inFlight.Add(1), st.max.Load(); n > m {
			st.inFlight.Add(-1)
			w.Header().Set("Retry-After", "1")
			refuse(w, http.StatusTooManyRequests, fmt.Sprintf("key %s has %d requests in flight already; try again", quote(k.ID), m))
			return
		}
		defer st.inFlight.Add(-1)
		if res := st.lim.Reserve(); !res.OK() || res.Delay() > 0 {
			d := time.Duration(math.MaxInt64)
			if res.OK() {
				d = res.Delay()
				res.Cancel() // refused: the token is not spent
			}
			w.Header().Set("Retry-After", strconv.Itoa(int(max(1, math.Ceil(min(d, time.Hour).Seconds())))))
			refuse(w, http.StatusTooManyRequests, fmt.Sprintf("key %s is over its rate of %g requests per second; try again", quote(k.ID), float64(st.lim.Limit())))
			return
		}
		next.ServeHTTP(w, r.WithContext(WithKey(r.Context(), k)))
	})
}

// bearer returns the secret of an "Authorization: Bearer" header.
func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	const p = "bearer "
	if len(h) <= len(p) || !strings.EqualFold(h[:len(p)], p) {
		return "", false
	}
	s := strings.TrimSpace(h[len(p):])
	return s, s != ""
}

// loopbackClient reports whether the request came from this machine.
func loopbackClient(r *http.Request) bool {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
