package cassandraio

import (
	"errors"
	"fmt"
	"strings"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"
)

// Config says where Cassandra is, how to reach it safely, and how hard to
// write to it. Build it with ParseURL or by hand, then EnsureDefaults and
// Validate.
type Config struct {
	Hosts    []string
	Port     int    // default 9042
	Keyspace string // default "lumen"

	// Username and Password authenticate with PasswordAuthenticator when
	// set. They never appear in String, errors or logs.
	Username string
	Password string
	TLS      TLSConfig

	// Consistency of writes and reads. Default LOCAL_QUORUM.
	Consistency gocql.Consistency
	// Replication of the keyspace when EnsureSchema creates it.
	Replication Replication

	// Rate is the cluster-wide write budget in rows/s (0 = unlimited),
	// divided evenly among Workers processes. ByteRate likewise in bytes/s.
	Rate     float64
	ByteRate float64
	Workers  int // default 1
	// Adaptive lowers the rate multiplicatively on timeouts and overload and
	// raises it additively while writes succeed, between MinRate and Rate
	// (or DefaultAdaptiveCeiling when Rate is 0).
	Adaptive bool
	MinRate  float64 // default 1% of the ceiling, at least 50 rows/s

	// MaxInFlight bounds the asynchronous writes in flight per process.
	// Default 32.
	MaxInFlight int
	// BatchRows and BatchBytes bound an unlogged batch (rows of one
	// partition). Defaults 50 rows and 32 KiB (Cassandra warns at 5 KiB
	// per batch by default and fails at 50 KiB; sketches are large).
	BatchRows  int
	BatchBytes int

	// Retries of a failed write (timeouts, overload, unavailability), with
	// exponential backoff and jitter from RetryMin up to RetryMax. Defaults
	// 8, 100ms, 5s: about 20 s of trying before a write fails.
	Retries  int
	RetryMin time.Duration
	RetryMax time.Duration
	// Timeout per request and for connecting. Defaults 5s and 5s.
	Timeout        time.Duration
	ConnectTimeout time.Duration

	// SpeedTTL is how long speed-layer rows live. Default 7 days.
	SpeedTTL time.Duration
}

// Replication is a keyspace replication strategy.
type Replication struct {
	// Class is SimpleStrategy or NetworkTopologyStrategy.
	Class string
	// Factor is SimpleStrategy's replication factor.
	Factor int
	// DataCenters are NetworkTopologyStrategy's factors.
	DataCenters []DCFactor
}

// DCFactor is one data centre's replication factor.
type DCFactor struct {
	Name   string
	Factor int
}

// DefaultAdaptiveCeiling is the adaptive mode's ceiling when Rate is 0.
const DefaultAdaptiveCeiling = 100_000

// EnsureDefaults fills zero values.
func (c *Config) EnsureDefaults() {
	if c.Port == 0 {
		c.Port = 9042
	}
	if c.Keyspace == "" {
		c.Keyspace = "lumen"
	}
	if c.Consistency == 0 {
		c.Consistency = gocql.LocalQuorum
	}
	if c.Replication.Class == "" {
		c.Replication = Replication{Class: "SimpleStrategy", Factor: 1}
	}
	if c.Workers == 0 {
		c.Workers = 1
	}
	if c.Adaptive && c.MinRate == 0 {
		c.MinRate = max(50, c.ceiling()/100)
	}
	if c.MaxInFlight == 0 {
		c.MaxInFlight = 32
	}
	if c.BatchRows == 0 {
		c.BatchRows = 50
	}
	if c.BatchBytes == 0 {
		c.BatchBytes = 32 << 10
	}
	if c.Retries == 0 {
		c.Retries = 8
	}
	if c.RetryMin == 0 {
		c.RetryMin = 100 * time.Millisecond
	}
	if c.RetryMax == 0 {
		c.RetryMax = 5 * time.Second
	}
	if c.Timeout == 0 {
		c.Timeout = 5 * time.Second
	}
	if c.ConnectTimeout == 0 {
		c.ConnectTimeout = 5 * time.Second
	}
	if c.SpeedTTL == 0 {
		c.SpeedTTL = 7 * 24 * time.Hour
	}
}

// ceiling is the per-process rate the throttle starts from (0: none).
func (c *Config) ceiling() float64 {
	if c.Rate > 0 {
		return c.Rate / float64(max(1, c.Workers))
	}
	if c.Adaptive {
		return DefaultAdaptiveCeiling / float64(max(1, c.Workers))
	}
	return 0
}

// Validate reports every problem at once. Messages name the URL parameter
// or option at fault and never contain the password.
func (c *Config) Validate() error {
	var errs []error
	if len(c.Hosts) == 0 {
		errs = append(errs, errors.New("hosts: at least one required"))
	}
	for _, h := range c.Hosts {
		if h == "" || strings.ContainsAny(h, "/ ?#") {
			errs = append(errs, fmt.Errorf("hosts: bad host %q", h))
		}
	}
	if c.Port <= 0 || c.Port > 65535 {
		errs = append(errs, fmt.Errorf("port: %d", c.Port))
	}
	if !validIdent(c.Keyspace) {
		errs = append(errs, fmt.Errorf("keyspace: %q is not a valid CQL identifier", c.Keyspace))
	}
	if (c.Username == "") != (c.Password == "") {
		errs = append(errs, errors.New("credentials: username and password go together"))
	}
	switch c.Replication.Class {
	case "SimpleStrategy":
		if c.Replication.Factor < 1 {
			errs = append(errs, fmt.Errorf("replication: factor %d", c.Replication.Factor))
		}
	case "NetworkTopologyStrategy":
		if len(c.Replication.DataCenters) == 0 {
			errs = append(errs, errors.New("replication: NetworkTopologyStrategy needs dc=factor pairs"))
		}
		for _, dc := range c.Replication.DataCenters {
			if !validIdent(dc.Name) || dc.Factor < 1 {
				errs = append(errs, fmt.Errorf("replication: bad data centre %q=%d", dc.Name, dc.Factor))
			}
		}
	default:
		errs = append(errs, fmt.Errorf("replication: class %q (want SimpleStrategy or NetworkTopologyStrategy)", c.Replication.Class))
	}
	if c.Rate < 0 || c.ByteRate < 0 {
		errs = append(errs, errors.New("rate: must not be negative"))
	}
	if c.Workers < 1 {
		errs = append(errs, fmt.Errorf("workers: %d", c.Workers))
	}
	if c.Adaptive && (c.MinRate <= 0 || c.MinRate > c.ceiling()) {
		errs = append(errs, fmt.Errorf("min_rate: %v, want in (0, %v]", c.MinRate, c.ceiling()))
	}
	if c.MaxInFlight < 1 || c.BatchRows < 1 || c.BatchBytes < 1 {
		errs = append(errs, errors.New("in_flight, batch_rows, batch_bytes: must be positive"))
	}
	if c.Retries < 0 || c.RetryMin <= 0 || c.RetryMax < c.RetryMin {
		errs = append(errs, errors.New("retries: need retries >= 0 and 0 < retry_min <= retry_max"))
	}
	if c.Timeout <= 0 || c.ConnectTimeout <= 0 || c.SpeedTTL < time.Second {
		errs = append(errs, errors.New("timeout, connect_timeout, ttl: must be positive (ttl at least 1s)"))
	}
	if _, err := c.TLS.build(); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return fmt.Errorf("cassandraio: %w", errors.Join(errs...))
	}
	return nil
}

func validIdent(s string) bool {
	if s == "" || len(s) > 48 {
		return false
	}
	for i, r := range s {
		ok := r == '_' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (i > 0 && r >= '0' && r <= '9')
		if !ok {
			return false
		}
	}
	return true
}

// String describes the configuration without credentials.
func (c Config) String() string {
	auth := "no auth"
	if c.Username != "" {
		auth = "user " + c.Username + " (password set)"
	}
	return fmt.Sprintf("cassandra %s:%d/%s (%s, tls=%v, consistency %v, rate %v rows/s over %d workers, adaptive=%v)",
		strings.Join(c.Hosts, ","), c.Port, c.Keyspace, auth, c.TLS.Enabled, c.Consistency, c.Rate, c.Workers, c.Adaptive)
}

// GoString keeps %#v from printing the password.
func (c Config) GoString() string { return "cassandraio.Config{" + c.String() + "}" }
