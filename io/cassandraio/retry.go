package cassandraio

import (
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"
)

// IsRetryable reports whether a failed write may succeed if tried again:
// timeouts, overload, unavailable replicas, a node bootstrapping, and lost,
// exhausted or absent connections (the driver marks a stalled node down).
// Syntax, invalid-request and authentication errors are not.
func IsRetryable(err error) bool {
	if err == nil {
		return false
	}
	if isTrouble(err) {
		return true
	}
	var unavailable *gocql.RequestErrUnavailable
	var bootstrapping *gocql.RequestErrBootstrapping
	var netErr net.Error
	switch {
	case errors.As(err, &unavailable), errors.As(err, &bootstrapping):
		return true
	case errors.Is(err, gocql.ErrConnectionClosed), errors.Is(err, gocql.ErrNoConnections),
		errors.Is(err, gocql.ErrNoStreams), errors.Is(err, gocql.ErrUnavailable):
		return true
	case errors.As(err, &netErr):
		return true
	}
	return false
}

// isTrouble reports the failures that mean the cluster is struggling,
// which adaptive mode answers by slowing down: timeouts and overload.
func isTrouble(err error) bool {
	var writeTimeout *gocql.RequestErrWriteTimeout
	var readTimeout *gocql.RequestErrReadTimeout
	var overloaded *gocql.RequestErrOverloaded
	switch {
	case errors.As(err, &writeTimeout), errors.As(err, &readTimeout), errors.As(err, &overloaded):
		return true
	case errors.Is(err, gocql.ErrTimeoutNoResponse), errors.Is(err, gocql.ErrTooManyTimeouts):
		return true
	}
	var netErr net.Error
	return errors.As(err, &netErr) && netErr.Timeout()
}

// backoff is how long to wait before retry attempt n (0-based):
// exponential from min, capped at max, with "equal jitter" (half fixed,
// half random) so retries of many writes that failed together spread out.
func backoff(n int, lo, hi time.Duration) time.Duration {
	d := lo << min(n, 30)
	if d <= 0 || d > hi {
		d = hi
	}
	return d/2 + rand.N(d/2+1)
}

// withRetries runs op until it succeeds, fails with an error that is not
// retryable, or has failed 1+retries times. Each retryable failure is
// counted with onRetry, reported to the throttle if it is a timeout or
// overload, and followed by a backoff.
func withRetries(ctx context.Context, retries int, lo, hi time.Duration, th *Throttle, onRetry func(), op func() error) error {
	for n := 0; ; n++ {
		err := op()
		if err == nil || !IsRetryable(err) || n >= retries || ctx.Err() != nil {
			return err
		}
		onRetry()
		if isTrouble(err) {
			th.Trouble()
		}
		t := time.NewTimer(backoff(n, lo, hi))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return err
		}
	}
}
