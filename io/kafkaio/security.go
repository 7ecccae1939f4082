package kafkaio

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// SASL mechanisms Security accepts.
const (
	SASLPlain       = "PLAIN"
	SASLScramSHA256 = "SCRAM-SHA-256"
	SASLScramSHA512 = "SCRAM-SHA-512"
)

// DefaultPasswordEnv is the environment variable that holds the SASL
// password on every process that talks to Kafka.
const DefaultPasswordEnv = "LUMEN_KAFKA_PASSWORD"

// Security says how lumen's Kafka clients reach the brokers: TLS, and SASL
// with PLAIN or SCRAM. It travels with the pipeline to every worker, so it
// holds no secret: the SASL password is read, on each worker, from the
// environment variable PasswordEnv. The zero value is plaintext without
// authentication.
type Security struct {
	// TLS turns TLS on. CAFile verifies the brokers (default: the system
	// roots); CertFile and KeyFile, if set, authenticate the client
	// (mutual TLS); ServerName overrides the name verified.
	TLS                       bool
	CAFile, CertFile, KeyFile string
	ServerName                string
	// InsecureSkipVerify accepts any broker certificate (tests only).
	InsecureSkipVerify bool
	// SASL is "", SASLPlain, SASLScramSHA256 or SASLScramSHA512; User is
	// the SASL user. PasswordEnv names the variable holding the password;
	// default DefaultPasswordEnv.
	SASL        string
	User        string
	PasswordEnv string
}

// Validate reports every problem at once. It does not read files or the
// environment: those are the workers'.
func (s Security) Validate() error {
	var errs []error
	switch s.SASL {
	case "", SASLPlain, SASLScramSHA256, SASLScramSHA512:
	default:
		errs = append(errs, fmt.Errorf("sasl: %q (want %s, %s or %s)", s.SASL, SASLPlain, SASLScramSHA256, SASLScramSHA512))
	}
	if s.SASL != "" && s.User == "" {
		errs = append(errs, errors.New("sasl: a user is required"))
	}
	if s.SASL == "" && s.User != "" {
		errs = append(errs, errors.New("sasl user given without a mechanism"))
	}
	if (s.CertFile == "") != (s.KeyFile == "") {
		errs = append(errs, errors.New("tls: a client certificate needs both cert and key files"))
	}
	if !s.TLS && (s.CAFile != "" || s.CertFile != "" || s.ServerName != "" || s.InsecureSkipVerify) {
		errs = append(errs, errors.New("tls settings given without tls"))
	}
	return errors.Join(errs...)
}

// Opts returns the franz-go options that apply s, reading the CA,
// certificate and key files and the password variable now.
func (s Security) Opts() ([]kgo.Opt, error) {
	if err := s.Validate(); err != nil {
		return nil, fmt.Errorf("kafkaio: %w", err)
	}
	var opts []kgo.Opt
	if s.TLS {
		cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: s.ServerName, InsecureSkipVerify: s.InsecureSkipVerify}
		if s.CAFile != "" {
			pem, err := os.ReadFile(s.CAFile)
			if err != nil {
				return nil, fmt.Errorf("kafkaio: tls ca: %w", err)
			}
			cfg.RootCAs = x509.NewCertPool()
			if !cfg.RootCAs.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("kafkaio: tls ca: no certificate in %s", s.CAFile)
			}
		}
		if s.CertFile != "" {
			cert, err := tls.LoadX509KeyPair(s.CertFile, s.KeyFile)
			if err != nil {
				return nil, fmt.Errorf("kafkaio: tls client certificate: %w", err)
			}
			cfg.Certificates = []tls.Certificate{cert}
		}
		opts = append(opts, kgo.Dialer((&tls.Dialer{NetDialer: &net.Dialer{Timeout: 10 * time.Second}, Config: cfg}).DialContext))
	}
	if s.SASL != "" {
		env := s.PasswordEnv
		if env == "" {
			env = DefaultPasswordEnv
		}
		pass, ok := os.LookupEnv(env)
		if !ok {
			return nil, fmt.Errorf("kafkaio: sasl %s: the password variable %s is not set on this worker", s.SASL, env)
		}
		var m sasl.Mechanism
		switch s.SASL {
		case SASLPlain:
			m = plain.Auth{User: s.User, Pass: pass}.AsMechanism()
		case SASLScramSHA256:
			m = scram.Auth{User: s.User, Pass: pass}.AsSha256Mechanism()
		case SASLScramSHA512:
			m = scram.Auth{User: s.User, Pass: pass}.AsSha512Mechanism()
		}
		opts = append(opts, kgo.SASL(m))
	}
	return opts, nil
}
