package cassandraio

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strconv"
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

// TLSConfig is the client's TLS setup.
type TLSConfig struct {
	Enabled    bool
	CAFile     string // PEM bundle to verify the server; default: system roots
	CertFile   string // client certificate (mutual TLS), with KeyFile
	KeyFile    string
	ServerName string // expected server name; default: the host dialled
	// InsecureSkipVerify disables server verification: for tests only.
	InsecureSkipVerify bool
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

// Environment variables that supply credentials when the URL does not, so
// they need not appear on command lines.
const (
	EnvUsername = "LUMEN_CASSANDRA_USERNAME"
	EnvPassword = "LUMEN_CASSANDRA_PASSWORD"
)

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

// build turns TLSConfig into a tls.Config, checking every file.
func (t TLSConfig) build() (*tls.Config, error) {
	if !t.Enabled {
		if t.CAFile != "" || t.CertFile != "" || t.KeyFile != "" || t.ServerName != "" || t.InsecureSkipVerify {
			return nil, errors.New("tls: options given but tls is not enabled (tls=true)")
		}
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName, InsecureSkipVerify: t.InsecureSkipVerify}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("tls_ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls_ca: %s holds no PEM certificate", t.CAFile)
		}
		cfg.RootCAs = pool
	}
	if (t.CertFile == "") != (t.KeyFile == "") {
		return nil, errors.New("tls_cert and tls_key go together")
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("tls_cert/tls_key: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
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

// ParseURL parses a store URL:
//
//	cassandra://[user[:password]@]h1,h2[:port]/keyspace?rate=5000&consistency=LOCAL_QUORUM&adaptive=true
//
// Parameters: rate, byte_rate, workers, adaptive, min_rate, in_flight,
// batch_rows, batch_bytes, consistency, replication (SimpleStrategy:N or
// NetworkTopologyStrategy:dc1=3,dc2=3), retries, retry_min, retry_max,
// timeout, connect_timeout, ttl, tls, tls_ca, tls_cert, tls_key,
// tls_server_name, tls_insecure, username, password. Credentials missing
// from the URL come from LUMEN_CASSANDRA_USERNAME and
// LUMEN_CASSANDRA_PASSWORD. Errors never echo the password.
func ParseURL(raw string) (Config, error) {
	var c Config
	rest, ok := strings.CutPrefix(raw, "cassandra://")
	if !ok {
		return c, errors.New("cassandraio: store URL must start with cassandra://")
	}
	hostPart, query, _ := strings.Cut(rest, "?")
	hostPart, ks, _ := strings.Cut(hostPart, "/")
	if at := strings.LastIndex(hostPart, "@"); at >= 0 {
		userinfo := hostPart[:at]
		hostPart = hostPart[at+1:]
		user, pass, _ := strings.Cut(userinfo, ":")
		var err error
		if c.Username, err = url.PathUnescape(user); err != nil {
			return c, errors.New("cassandraio: bad username encoding in URL")
		}
		if c.Password, err = url.PathUnescape(pass); err != nil {
			return c, errors.New("cassandraio: bad password encoding in URL")
		}
	}
	c.Keyspace = ks
	var errs []error
	for _, h := range strings.Split(hostPart, ",") {
		host, port, hasPort := strings.Cut(h, ":")
		if hasPort {
			p, err := strconv.Atoi(port)
			if err != nil {
				errs = append(errs, fmt.Errorf("port: %q", port))
			} else {
				if c.Port != 0 && c.Port != p {
					errs = append(errs, errors.New("port: hosts must share one port"))
				}
				c.Port = p
			}
		}
		if host != "" {
			c.Hosts = append(c.Hosts, host)
		}
	}
	q, err := url.ParseQuery(query)
	if err != nil {
		return c, errors.New("cassandraio: bad query string in store URL")
	}
	for key, vals := range q {
		v := vals[len(vals)-1]
		if err := c.setParam(key, v); err != nil {
			errs = append(errs, err)
		}
	}
	if c.Username == "" {
		c.Username = os.Getenv(EnvUsername)
	}
	if c.Password == "" {
		c.Password = os.Getenv(EnvPassword)
	}
	if len(errs) > 0 {
		return c, fmt.Errorf("cassandraio: store URL: %w", errors.Join(errs...))
	}
	return c, nil
}

func (c *Config) setParam(key, v string) error {
	num := func(f *float64) error {
		x, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return fmt.Errorf("%s: %q is not a number", key, v)
		}
		*f = x
		return nil
	}
	integer := func(n *int) error {
		x, err := strconv.Atoi(v)
		if err != nil {
			return fmt.Errorf("%s: %q is not an integer", key, v)
		}
		*n = x
		return nil
	}
	boolean := func(b *bool) error {
		x, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("%s: %q is not true or false", key, v)
		}
		*b = x
		return nil
	}
	dur := func(d *time.Duration) error {
		x, err := time.ParseDuration(v)
		if err != nil {
			return fmt.Errorf("%s: %q is not a duration", key, v)
		}
		*d = x
		return nil
	}
	switch key {
	case "rate":
		return num(&c.Rate)
	case "byte_rate":
		return num(&c.ByteRate)
	case "min_rate":
		return num(&c.MinRate)
	case "workers":
		return integer(&c.Workers)
	case "adaptive":
		return boolean(&c.Adaptive)
	case "in_flight":
		return integer(&c.MaxInFlight)
	case "batch_rows":
		return integer(&c.BatchRows)
	case "batch_bytes":
		return integer(&c.BatchBytes)
	case "retries":
		return integer(&c.Retries)
	case "retry_min":
		return dur(&c.RetryMin)
	case "retry_max":
		return dur(&c.RetryMax)
	case "timeout":
		return dur(&c.Timeout)
	case "connect_timeout":
		return dur(&c.ConnectTimeout)
	case "ttl":
		return dur(&c.SpeedTTL)
	case "consistency":
		cl, err := gocql.ParseConsistencyWrapper(strings.ToUpper(v))
		if err != nil {
			return fmt.Errorf("consistency: %q", v)
		}
		c.Consistency = cl
		return nil
	case "replication":
		return c.Replication.parse(v)
	case "tls":
		return boolean(&c.TLS.Enabled)
	case "tls_ca":
		c.TLS.CAFile = v
	case "tls_cert":
		c.TLS.CertFile = v
	case "tls_key":
		c.TLS.KeyFile = v
	case "tls_server_name":
		c.TLS.ServerName = v
	case "tls_insecure":
		return boolean(&c.TLS.InsecureSkipVerify)
	case "username":
		c.Username = v
	case "password":
		c.Password = v
	default:
		return fmt.Errorf("unknown parameter %q", key)
	}
	return nil
}

// parse reads SimpleStrategy:N or NetworkTopologyStrategy:dc1=3,dc2=2.
func (r *Replication) parse(v string) error {
	class, args, _ := strings.Cut(v, ":")
	r.Class = class
	switch class {
	case "SimpleStrategy":
		n, err := strconv.Atoi(args)
		if err != nil {
			return fmt.Errorf("replication: SimpleStrategy:N, got %q", v)
		}
		r.Factor = n
	case "NetworkTopologyStrategy":
		for _, kv := range strings.Split(args, ",") {
			name, f, ok := strings.Cut(kv, "=")
			n, err := strconv.Atoi(f)
			if !ok || err != nil {
				return fmt.Errorf("replication: NetworkTopologyStrategy:dc=N,…, got %q", v)
			}
			r.DataCenters = append(r.DataCenters, DCFactor{Name: name, Factor: n})
		}
	default:
		return fmt.Errorf("replication: class %q (want SimpleStrategy or NetworkTopologyStrategy)", class)
	}
	return nil
}

// cql renders the replication map for CREATE KEYSPACE. Names were
// validated as identifiers, so this cannot inject CQL.
func (r Replication) cql() string {
	if r.Class == "SimpleStrategy" {
		return fmt.Sprintf("{'class': 'SimpleStrategy', 'replication_factor': %d}", r.Factor)
	}
	parts := []string{"'class': 'NetworkTopologyStrategy'"}
	for _, dc := range r.DataCenters {
		parts = append(parts, fmt.Sprintf("'%s': %d", dc.Name, dc.Factor))
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

// GoString keeps %#v from printing the password.
func (c Config) GoString() string { return "cassandraio.Config{" + c.String() + "}" }

// ExportCredentials puts a user name and the password read from
// passwordFile (either may be empty) into the environment variables
// ParseURL reads, so commands can take credentials from flags without ever
// writing them into a store URL, which a pipeline serialises. A password
// file's trailing newline is dropped.
func ExportCredentials(user, passwordFile string) error {
	if user != "" {
		os.Setenv(EnvUsername, user)
	}
	if passwordFile != "" {
		b, err := os.ReadFile(passwordFile)
		if err != nil {
			return fmt.Errorf("cassandraio: password file: %w", err)
		}
		os.Setenv(EnvPassword, strings.TrimRight(string(b), "\r\n"))
	}
	return nil
}

// MovePasswordToEnv takes the password out of a cassandra:// store URL
// (user:password@, or a password= parameter), puts it into this process's
// LUMEN_CASSANDRA_PASSWORD, where ParseURL finds it, and returns the URL
// without it, and whether there was one. Other URLs come back unchanged.
//
// A store URL travels with the pipeline: in the DoFns that write (to every
// worker) and, as a flag, in the pipeline options a runner receives and
// shows. Commands call this before building a graph so no password is in
// either; workers in other processes read the variable from their own
// environment.
func MovePasswordToEnv(raw string) (string, bool, error) {
	rest, ok := strings.CutPrefix(raw, "cassandra://")
	if !ok {
		return raw, false, nil
	}
	authority, tail := rest, ""
	if i := strings.IndexAny(rest, "/?"); i >= 0 {
		authority, tail = rest[:i], rest[i:]
	}
	var password string
	moved := false
	if at := strings.LastIndex(authority, "@"); at >= 0 {
		if user, pass, hasPass := strings.Cut(authority[:at], ":"); hasPass {
			p, err := url.PathUnescape(pass)
			if err != nil {
				return raw, false, errors.New("cassandraio: bad password encoding in URL")
			}
			password, moved = p, true
			if user == "" {
				authority = authority[at+1:]
			} else {
				authority = user + authority[at:]
			}
		}
	}
	if base, query, hasQuery := strings.Cut(tail, "?"); hasQuery {
		var kept []string
		for _, kv := range strings.Split(query, "&") {
			k, v, _ := strings.Cut(kv, "=")
			if k != "password" {
				kept = append(kept, kv)
				continue
			}
			p, err := url.QueryUnescape(v)
			if err != nil {
				return raw, false, errors.New("cassandraio: bad password encoding in URL")
			}
			password, moved = p, true
		}
		tail = base
		if len(kept) > 0 {
			tail += "?" + strings.Join(kept, "&")
		}
	}
	if !moved {
		return raw, false, nil
	}
	os.Setenv(EnvPassword, password)
	return "cassandra://" + authority + tail, true, nil
}
