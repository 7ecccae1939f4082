package cassandraio

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"
)

func TestParseURL(t *testing.T) {
	c, err := ParseURL("cassandra://bob:s%40cret@h1,h2:9142/metrics?rate=5000&consistency=local_one&adaptive=true&workers=4&in_flight=8&replication=NetworkTopologyStrategy:dc1=3,dc2=2&ttl=48h&tls=true&tls_insecure=true&retries=3&retry_max=2s")
	if err != nil {
		t.Fatal(err)
	}
	c.EnsureDefaults()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	want := []bool{
		strings.Join(c.Hosts, ",") == "h1,h2", c.Port == 9142, c.Keyspace == "metrics", c.Username == "bob", c.Password == "s@cret",
		c.Rate == 5000, c.Consistency == gocql.LocalOne, c.Adaptive, c.Workers == 4, c.MaxInFlight == 8,
		c.Replication.Class == "NetworkTopologyStrategy" && len(c.Replication.DataCenters) == 2,
		c.SpeedTTL == 48*time.Hour, c.TLS.Enabled && c.TLS.InsecureSkipVerify, c.Retries == 3, c.RetryMax == 2*time.Second,
		c.ceiling() == 1250, c.MinRate == 50,
	}
	for i, ok := range want {
		if !ok {
			t.Errorf("check %d failed: %+v", i, c)
		}
	}
	if got := c.Replication.cql(); got != "{'class': 'NetworkTopologyStrategy', 'dc1': 3, 'dc2': 2}" {
		t.Errorf("replication cql %s", got)
	}
}

func TestDefaults(t *testing.T) {
	c, err := ParseURL("cassandra://localhost")
	if err != nil {
		t.Fatal(err)
	}
	c.EnsureDefaults()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Port != 9042 || c.Keyspace != "lumen" || c.Consistency != gocql.LocalQuorum || c.Rate != 0 || c.Replication.Factor != 1 {
		t.Errorf("defaults: %+v", c)
	}
}

func TestValidateReportsEverythingWithoutSecrets(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "ca.pem")
	os.WriteFile(notPEM, []byte("not a certificate"), 0o600)
	cases := map[string][]string{
		"cassandra://u:topsecret@h/bad-keyspace?rate=-1&workers=-1":           {"keyspace", "rate", "workers"},
		"cassandra://h/ks?tls_ca=" + notPEM:                                   {"tls is not enabled"},
		"cassandra://h/ks?tls=true&tls_ca=" + notPEM:                          {"tls_ca", "no PEM"},
		"cassandra://h/ks?tls=true&tls_ca=/no/such/file":                      {"tls_ca"},
		"cassandra://h/ks?tls=true&tls_cert=" + notPEM:                        {"tls_cert and tls_key go together"},
		"cassandra://h/ks?tls=true&tls_cert=" + notPEM + "&tls_key=" + notPEM: {"tls_cert/tls_key"},
		"cassandra://h/ks?replication=SimpleStrategy:0":                       {"replication"},
		"cassandra://u@h/ks":                                                  {"username and password go together"},
		"cassandra://h/ks?adaptive=true&rate=100&min_rate=500":                {"min_rate"},
	}
	for url, wants := range cases {
		c, err := ParseURL(url)
		if err == nil {
			c.EnsureDefaults()
			err = c.Validate()
		}
		if err == nil {
			t.Errorf("%s: no error", url)
			continue
		}
		for _, w := range wants {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not mention %q", url, err, w)
			}
		}
		if strings.Contains(err.Error(), "topsecret") {
			t.Errorf("%s: error leaks the password: %v", url, err)
		}
	}
	for _, bad := range []string{"cassandra://h/ks?rate=fast", "cassandra://h/ks?consistency=SOME", "cassandra://h/ks?nope=1", "http://h", "cassandra://u:topsecret@h:port/ks"} {
		_, err := ParseURL(bad)
		if err == nil {
			t.Errorf("%s: no error", bad)
		} else if strings.Contains(err.Error(), "topsecret") {
			t.Errorf("%s: error leaks the password", bad)
		}
	}
}

func TestConfigNeverPrintsPassword(t *testing.T) {
	c, _ := ParseURL("cassandra://bob:hunter2@h/ks")
	for _, s := range []string{c.String(), fmtAll(c)} {
		if strings.Contains(s, "hunter2") {
			t.Errorf("printed config leaks the password: %s", s)
		}
	}
}

func TestCredentialsFromEnv(t *testing.T) {
	t.Setenv(EnvUsername, "envuser")
	t.Setenv(EnvPassword, "envpass")
	c, _ := ParseURL("cassandra://h/ks")
	if c.Username != "envuser" || c.Password != "envpass" {
		t.Errorf("env credentials not used: %q", c.Username)
	}
	c, _ = ParseURL("cassandra://urluser:urlpass@h/ks")
	if c.Username != "urluser" || c.Password != "urlpass" {
		t.Errorf("URL credentials must win: %q", c.Username)
	}
}

// The AIMD controller: halves on trouble (once per cooldown), steps back
// up while quiet, never leaves [floor, ceiling].
func TestAdaptiveThrottle(t *testing.T) {
	c, _ := ParseURL("cassandra://h/ks?rate=1000&adaptive=true&min_rate=100")
	c.EnsureDefaults()
	th := NewThrottle(c)
	now := time.Unix(0, 0)
	th.now = func() time.Time { return now }
	if th.Rate() != 1000 {
		t.Fatal(th.Rate())
	}
	th.Trouble()
	th.Trouble() // the same stall: ignored within the cooldown
	if th.Rate() != 500 {
		t.Fatalf("after trouble: %v", th.Rate())
	}
	for i := 0; i < 10; i++ {
		now = now.Add(th.cooldown)
		th.Trouble()
	}
	if th.Rate() != 100 {
		t.Fatalf("floor: %v", th.Rate())
	}
	var rates []float64
	for i := 0; i < 30; i++ {
		now = now.Add(th.interval)
		th.maybeRaise()
		rates = append(rates, th.Rate())
	}
	if rates[0] != 150 || rates[1] != 200 || rates[len(rates)-1] != 1000 {
		t.Errorf("additive recovery: %v", rates)
	}
	// Without adaptive mode the rate never moves.
	c.Adaptive = false
	fixed := NewThrottle(c)
	fixed.Trouble()
	if fixed.Rate() != 1000 {
		t.Errorf("non-adaptive rate moved: %v", fixed.Rate())
	}
}

func fmtAll(c Config) string { return fmt.Sprintf("%v %+v %#v %s", c, c, c, c) }

// A password written into a store URL leaves it for the environment, and
// the URL that is left parses to the same configuration.
func TestMovePasswordToEnv(t *testing.T) {
	for _, c := range []struct{ name, in, want, password string }{
		{"userinfo", "cassandra://bob:hun%40ter2@h1,h2:9042/ks?rate=5000&workers=4", "cassandra://bob@h1,h2:9042/ks?rate=5000&workers=4", "hun@ter2"},
		{"no user", "cassandra://:s3cret@h/ks", "cassandra://h/ks", "s3cret"},
		{"parameter", "cassandra://h/ks?rate=10&password=p%26w&workers=2", "cassandra://h/ks?rate=10&workers=2", "p&w"},
		{"only parameter", "cassandra://h?password=x", "cassandra://h", "x"},
		{"none", "cassandra://bob@h/ks?rate=1", "cassandra://bob@h/ks?rate=1", ""},
		{"not cassandra", "sqlite:/tmp/a:b@c.db", "sqlite:/tmp/a:b@c.db", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv(EnvPassword, "before")
			before, _ := ParseURL(c.in)
			got, moved, err := MovePasswordToEnv(c.in)
			if err != nil {
				t.Fatal(err)
			}
			if got != c.want || moved != (c.password != "") {
				t.Fatalf("MovePasswordToEnv(%q) = %q, %v; want %q, %v", c.in, got, moved, c.want, c.password != "")
			}
			want := c.password
			if want == "" {
				want = "before"
			}
			if env := os.Getenv(EnvPassword); env != want {
				t.Errorf("%s = %q, want %q", EnvPassword, env, want)
			}
			if !strings.HasPrefix(c.in, "cassandra://") {
				return
			}
			after, _ := ParseURL(got)
			if fmt.Sprintf("%#v|%q", after, after.Password) != fmt.Sprintf("%#v|%q", before, before.Password) {
				t.Errorf("the URL left parses to %#v (password %q), the original to %#v (%q)", after, after.Password, before, before.Password)
			}
		})
	}
}
