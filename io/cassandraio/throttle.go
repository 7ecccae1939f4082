package cassandraio

import (
	"context"
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Throttle paces writes of one process: a token bucket of rows/s and,
// optionally, one of bytes/s (golang.org/x/time/rate). In adaptive mode it
// is also an AIMD controller: a timeout or overload halves the row rate
// (at most once per cooldown, since one stall fails many writes at once),
// and every interval without trouble adds a fixed step back, up to the
// ceiling. The Spark system lumen replaces throttled Cassandra writes so a
// busy cluster would not be overwhelmed; the adaptive mode is new.
type Throttle struct {
	rows  *rate.Limiter // nil: unlimited
	bytes *rate.Limiter

	adaptive bool
	ceiling  float64
	floor    float64
	step     float64
	cooldown time.Duration
	interval time.Duration
	now      func() time.Time

	mu        sync.Mutex
	current   float64
	lastCut   time.Time
	lastRaise time.Time
	troubleAt time.Time
	cuts, ups int64
}

// Adaptive tuning: halve on trouble, at most once per cooldown; add 5% of
// the ceiling per quiet interval, so a full recovery takes ~20 intervals.
const (
	adaptiveCooldown = time.Second
	adaptiveInterval = 500 * time.Millisecond
	adaptiveSteps    = 20
)

// NewThrottle returns the throttle for one process of cfg.
func NewThrottle(cfg Config) *Throttle {
	t := &Throttle{adaptive: cfg.Adaptive, now: time.Now, cooldown: adaptiveCooldown, interval: adaptiveInterval}
	if c := cfg.ceiling(); c > 0 {
		t.ceiling, t.current = c, c
		t.floor = min(c, cfg.MinRate/float64(max(1, cfg.Workers)))
		if t.floor <= 0 {
			t.floor = c
		}
		t.step = c / adaptiveSteps
		// A burst of a tenth of a second (at least one batch) keeps the pace
		// even: a full second's burst would let the first second's rows
		// through at once. WaitN is called in burst-sized pieces.
		t.rows = rate.NewLimiter(rate.Limit(c), max(cfg.BatchRows, int(math.Ceil(c/10))))
	}
	if cfg.ByteRate > 0 {
		b := cfg.ByteRate / float64(max(1, cfg.Workers))
		t.bytes = rate.NewLimiter(rate.Limit(b), max(cfg.BatchBytes, int(math.Ceil(b/10))))
	}
	return t
}

// Wait blocks until rows rows and n bytes may be written, and returns how
// long it waited.
func (t *Throttle) Wait(ctx context.Context, rows, n int) (time.Duration, error) {
	start := time.Now()
	if t.rows != nil {
		if err := waitN(ctx, t.rows, rows); err != nil {
			return time.Since(start), err
		}
	}
	if t.bytes != nil {
		if err := waitN(ctx, t.bytes, n); err != nil {
			return time.Since(start), err
		}
	}
	t.maybeRaise()
	return time.Since(start), nil
}

// waitN waits for n tokens, in burst-sized pieces if n exceeds the burst.
func waitN(ctx context.Context, l *rate.Limiter, n int) error {
	for n > 0 {
		k := min(n, l.Burst())
		if err := l.WaitN(ctx, k); err != nil {
			return err
		}
		n -= k
	}
	return nil
}

// Trouble reports a timeout or overload: in adaptive mode the rate halves,
// once per cooldown.
func (t *Throttle) Trouble() {
	if !t.adaptive || t.rows == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	t.troubleAt = now
	if now.Sub(t.lastCut) < t.cooldown {
		return
	}
	t.lastCut = now
	t.setLocked(max(t.floor, t.current/2))
	t.cuts++
}

// maybeRaise adds a step once per quiet interval.
func (t *Throttle) maybeRaise() {
	if !t.adaptive || t.rows == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	if t.current >= t.ceiling || now.Sub(t.troubleAt) < t.interval || now.Sub(t.lastRaise) < t.interval {
		return
	}
	t.lastRaise = now
	t.setLocked(min(t.ceiling, t.current+t.step))
	t.ups++
}

func (t *Throttle) setLocked(r float64) {
	t.current = r
	t.rows.SetLimit(rate.Limit(r))
}

// Rate is the current row rate limit (0: unlimited).
func (t *Throttle) Rate() float64 {
	if t.rows == nil {
		return 0
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.current
}
