// Package cassandraflags holds the flags that give a cassandra:// --store
// its credentials without writing them into the URL, shared by cmd/batch,
// cmd/stream and cmd/query.
package cassandraflags

import (
	"flag"
	"fmt"

	"github.com/lumenhq/lumen/io/cassandraio"
)

// Flags are the parsed values.
type Flags struct {
	user, passwordFile *string
}

// Register defines the flags on fs.
func Register(fs *flag.FlagSet) *Flags {
	return &Flags{
		user:         fs.String("cassandra_username", "", "Cassandra user (or $"+cassandraio.EnvUsername+"); keeps credentials out of --store."),
		passwordFile: fs.String("cassandra_password_file", "", "File holding the Cassandra password (or $"+cassandraio.EnvPassword+")."),
	}
}

// Store exports the credentials the flags give into the environment that
// cassandraio.ParseURL reads, and returns store with any password it holds
// moved there too. A store URL travels with the pipeline, in its options
// and DoFns, so it must not carry the password; this process, and workers
// it starts, read it from the environment.
func (f *Flags) Store(store string) (string, error) {
	if err := cassandraio.ExportCredentials(*f.user, *f.passwordFile); err != nil {
		return "", fmt.Errorf("--cassandra_password_file: %w", err)
	}
	clean, _, err := cassandraio.MovePasswordToEnv(store)
	if err != nil {
		return "", fmt.Errorf("--store: %w", err)
	}
	return clean, nil
}
