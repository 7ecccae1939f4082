package cassandraio

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"
)

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
