package cassandraio

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
)

// Environment variables that supply credentials when the URL does not, so
// they need not appear on command lines.
const (
	EnvUsername = "LUMEN_CASSANDRA_USERNAME"
	EnvPassword = "LUMEN_CASSANDRA_PASSWORD"
)

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
