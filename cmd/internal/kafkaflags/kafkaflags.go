// Package kafkaflags holds the command-line flags of how lumen's commands
// reach Kafka (TLS, SASL), shared by cmd/stream and cmd/archive.
package kafkaflags

import (
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/lumenhq/lumen/io/kafkaio"
)

// Flags are the parsed values.
type Flags struct {
	tls, insecure                      *bool
	ca, cert, key, serverName          *string
	mechanism, user, passwordFile, env *string
}

// Register defines the flags on fs.
func Register(fs *flag.FlagSet) *Flags {
	return &Flags{
		tls:          fs.Bool("kafka_tls", false, "Reach the brokers over TLS."),
		ca:           fs.String("kafka_tls_ca", "", "PEM file of the CA that signed the brokers' certificates (default: the system roots)."),
		cert:         fs.String("kafka_tls_cert", "", "PEM client certificate, for mutual TLS (with --kafka_tls_key)."),
		key:          fs.String("kafka_tls_key", "", "PEM client key, for mutual TLS."),
		serverName:   fs.String("kafka_tls_server_name", "", "Server name to verify in the brokers' certificates."),
		insecure:     fs.Bool("kafka_tls_insecure", false, "Accept any broker certificate (testing only)."),
		mechanism:    fs.String("kafka_sasl", "", "SASL mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (default: none)."),
		user:         fs.String("kafka_user", "", "SASL user."),
		passwordFile: fs.String("kafka_password_file", "", "File holding the SASL password (else $"+kafkaio.DefaultPasswordEnv+"); never a flag value, so it stays out of process lists and pipeline options."),
		env:          fs.String("kafka_password_env", kafkaio.DefaultPasswordEnv, "Environment variable the workers read the SASL password from."),
	}
}

// Security returns the configuration, after exporting the password file's
// content into the password variable so that this process's workers find
// it; workers elsewhere need the variable set.
func (f *Flags) Security() (kafkaio.Security, error) {
	s := kafkaio.Security{TLS: *f.tls, CAFile: *f.ca, CertFile: *f.cert, KeyFile: *f.key, ServerName: *f.serverName,
		InsecureSkipVerify: *f.insecure, SASL: strings.ToUpper(*f.mechanism), User: *f.user, PasswordEnv: *f.env}
	if *f.passwordFile != "" {
		b, err := os.ReadFile(*f.passwordFile)
		if err != nil {
			return s, fmt.Errorf("--kafka_password_file: %w", err)
		}
		if err := os.Setenv(*f.env, strings.TrimRight(string(b), "\r\n")); err != nil {
			return s, fmt.Errorf("--kafka_password_file: %w", err)
		}
	}
	if err := s.Validate(); err != nil {
		return s, fmt.Errorf("--kafka_*: %w", err)
	}
	return s, nil
}
