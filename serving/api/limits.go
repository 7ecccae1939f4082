package api

import (
	"context"
	"fmt"
	"net/http"
	"time"
)

// Limits bounds the work the server takes on, so that overload is answered
// at once instead of queueing:
//
//   - at most MaxInFlight requests are served at once; one more gets 503
//     with Retry-After, never a wait (0: no bound);
//   - every request has a deadline of RequestTimeout, which reaches each
//     store call through its context; a request that runs out answers 503
//     (0: no deadline beyond the store calls' own).
//
// /healthz is exempt: a liveness probe must not fail because the server is
// busy.
type Limits struct {
	MaxInFlight    int
	RequestTimeout time.Duration
}

// Wrap returns next within the limits.
func (l Limits) Wrap(next http.Handler) http.Handler {
	var slots chan struct{}
	if l.MaxInFlight > 0 {
		slots = make(chan struct{}, l.MaxInFlight)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			next.ServeHTTP(w, r)
			return
		}
		if slots != nil {
			select {
			case slots <- struct{}{}:
				defer func() { <-slots }()
			default:
				w.Header().Set("Retry-After", "1")
				refuse(w, http.StatusServiceUnavailable, fmt.Sprintf("the server is answering %d requests already; try again", l.MaxInFlight))
				return
			}
		}
		if l.RequestTimeout > 0 {
			ctx, cancel := context.WithTimeout(r.Context(), l.RequestTimeout)
			defer cancel()
			r = r.WithContext(ctx)
		}
		next.ServeHTTP(w, r)
	})
}
