package cassandraio

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"

	gocql "github.com/apache/cassandra-gocql-driver/v2"
)

// Client is a process's connection to one Cassandra cluster: a gocql
// session, the process-wide throttle and in-flight bound, and counters.
// Connect shares one Client per configuration per process, because a Beam
// worker runs many bundles and each would otherwise open its own pool and
// take the whole per-process budget.
type Client struct {
	cfg      Config
	session  *gocql.Session
	throttle *Throttle
	inflight chan struct{}

	key  string
	refs int

	rows, batches, failures, retries atomic.Int64
	waitNanos                        atomic.Int64
	inFlight, peakInFlight           atomic.Int64
}

var (
	clientsMu sync.Mutex
	clients   = map[string]*Client{}
)

// Connect returns the process's Client for cfg, connecting if needed. Every
// Connect must be matched by a Close.
func Connect(ctx context.Context, cfg Config) (*Client, error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	key, err := cfg.cacheKey()
	if err != nil {
		return nil, err
	}
	clientsMu.Lock()
	defer clientsMu.Unlock()
	if c := clients[key]; c != nil {
		c.refs++
		return c, nil
	}
	tlsCfg, _ := cfg.TLS.build() // validated above
	cl := gocql.NewCluster(cfg.Hosts...)
	cl.Port = cfg.Port
	cl.Consistency = cfg.Consistency
	cl.Timeout = cfg.Timeout
	cl.ConnectTimeout = cfg.ConnectTimeout
	cl.WriteTimeout = cfg.Timeout
	cl.DefaultIdempotence = true // every lumen write is an upsert
	cl.NumConns = 2
	if cfg.Username != "" {
		cl.Authenticator = gocql.PasswordAuthenticator{Username: cfg.Username, Password: cfg.Password}
	}
	if tlsCfg != nil {
		cl.SslOpts = &gocql.SslOptions{Config: tlsCfg, EnableHostVerification: !cfg.TLS.InsecureSkipVerify}
	}
	session, err := cl.CreateSession()
	if err != nil {
		// The driver's message names hosts and causes, never credentials;
		// cfg.String() is redacted.
		return nil, fmt.Errorf("cassandraio: connect to %v: %w", cfg, err)
	}
	c := &Client{cfg: cfg, session: session, throttle: NewThrottle(cfg), inflight: make(chan struct{}, cfg.MaxInFlight), key: key, refs: 1}
	clients[key] = c
	return c, nil
}

// cacheKey identifies a configuration, credentials included, without
// holding them in clear.
func (c Config) cacheKey() (string, error) {
	type alias Config // no String/GoString: every field
	b, err := json.Marshal(alias(c))
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}

// Close releases the Client; the last Close closes the session.
func (c *Client) Close() {
	clientsMu.Lock()
	defer clientsMu.Unlock()
	c.refs--
	if c.refs == 0 {
		delete(clients, c.key)
		c.session.Close()
	}
}

// Config returns the client's configuration.
func (c *Client) Config() Config { return c.cfg }

// Session is the underlying gocql session, for reads.
func (c *Client) Session() *gocql.Session { return c.session }

// Throttle is the process's write throttle.
func (c *Client) Throttle() *Throttle { return c.throttle }

// Query prepares a statement with bound values at the configured
// consistency. Reads retry in the driver (same host, no backoff); writes
// go through a Writer, which retries with backoff.
func (c *Client) Query(ctx context.Context, stmt string, args ...any) *gocql.Query {
	return c.session.Query(stmt, args...).WithContext(ctx).Consistency(c.cfg.Consistency).
		RetryPolicy(&gocql.SimpleRetryPolicy{NumRetries: 2}).Idempotent(true)
}

// Stats are a Client's counters since it connected.
type Stats struct {
	Rows         int64 // rows written
	Batches      int64 // requests (batches or single statements) that succeeded
	Failures     int64 // requests that failed after every retry
	Retries      int64 // retryable failed attempts (each is retried unless the budget is spent)
	ThrottleWait int64 // nanoseconds spent waiting for the throttle
	InFlight     int64
	PeakInFlight int64
	Rate         float64 // current row rate limit; 0 = unlimited
}

// Stats returns the client's counters.
func (c *Client) Stats() Stats {
	return Stats{
		Rows: c.rows.Load(), Batches: c.batches.Load(), Failures: c.failures.Load(), Retries: c.retries.Load(),
		ThrottleWait: c.waitNanos.Load(), InFlight: c.inFlight.Load(), PeakInFlight: c.peakInFlight.Load(),
		Rate: c.throttle.Rate(),
	}
}
