package api

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"regexp"
	"slices"
	"strings"
)

// A keys file lists the API keys of `query serve --keys`, as JSON:
//
//	{"keys": [
//	  {"id": "acme", "secret_sha256": "9f86d0…", "apps": ["com.acme.notes", "com.acme.*"]},
//	  {"id": "ops", "secret_sha256": "…", "apps": ["*"], "metrics": true, "rate": 500}
//	]}
//
// A key holds the SHA-256 of its secret, never the secret: `query keygen`
// makes a secret and prints its entry. Secrets are random 256-bit tokens,
// so a plain hash is as strong as a slow one and costs nothing per request.
// apps are exact app ids, or prefixes ending in "*" ("*" alone: every
// app). metrics lets the key read /metrics from beyond loopback. rate
// (requests per second), burst and max_in_flight override the server's
// per-key defaults.
type KeysFile struct {
	Keys []KeyEntry `json:"keys"`
}

// KeyEntry is one key of a keys file.
type KeyEntry struct {
	ID           string   `json:"id"`
	SecretSHA256 string   `json:"secret_sha256"`
	Apps         []string `json:"apps"`
	Metrics      bool     `json:"metrics,omitempty"`
	Rate         float64  `json:"rate,omitempty"`
	Burst        int      `json:"burst,omitempty"`
	MaxInFlight  int      `json:"max_in_flight,omitempty"`
}

// Key is a parsed key: who it is, what it may read, and its limits.
type Key struct {
	ID      string
	hash    [sha256.Size]byte
	exact   map[string]bool
	prefix  []string // "" (from "*") allows every app
	Metrics bool
	// Rate, Burst and MaxInFlight are the key's own limits; zero takes the
	// server's defaults (KeyLimits).
	Rate        float64
	Burst       int
	MaxInFlight int
}

// Allows reports whether the key may read app.
func (k *Key) Allows(app string) bool {
	if k.exact[app] {
		return true
	}
	for _, p := range k.prefix {
		if strings.HasPrefix(app, p) {
			return true
		}
	}
	return false
}

// Keys is a parsed keys file.
type Keys struct {
	keys []*Key
}

// Len is the number of keys.
func (ks *Keys) Len() int { return len(ks.keys) }

// Lookup returns the key whose secret is secret, or nil. It hashes secret
// once and compares it with every key's hash in constant time, without
// stopping at a match, so the time taken says nothing about the keys.
func (ks *Keys) Lookup(secret string) *Key {
	h := sha256.Sum256([]byte(secret))
	var found *Key
	for _, k := range ks.keys {
		if subtle.ConstantTimeCompare(h[:], k.hash[:]) == 1 {
			found = k
		}
	}
	return found
}

var keyID = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// MaxKeysFileBytes bounds a keys file.
const MaxKeysFileBytes = 16 << 20

// ParseKeys parses a keys file. It refuses the whole file for any error
// (naming the key and the field), so that a typo never serves with half
// the keys: a server reloading a bad file keeps its old keys.
func ParseKeys(r io.Reader) (*Keys, error) {
	b, err := io.ReadAll(io.LimitReader(r, MaxKeysFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("keys: %w", err)
	}
	if len(b) > MaxKeysFileBytes {
		return nil, fmt.Errorf("keys: the file is over %d bytes", MaxKeysFileBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var f KeysFile
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("keys: not a keys file (%w); want {\"keys\": [{\"id\": …, \"secret_sha256\": …, \"apps\": […]}]}", err)
	}
	if dec.More() {
		return nil, fmt.Errorf("keys: data after the keys object")
	}
	ks := &Keys{}
	ids, hashes := map[string]bool{}, map[[sha256.Size]byte]string{}
	for i, e := range f.Keys {
		where := fmt.Sprintf("keys: key %d", i+1)
		if !keyID.MatchString(e.ID) {
			return nil, fmt.Errorf("%s: id %s: want 1–64 letters, digits, '.', '_' or '-'", where, quote(e.ID))
		}
		where = fmt.Sprintf("keys: key %q", e.ID)
		if ids[e.ID] {
			return nil, fmt.Errorf("%s: the id is listed twice", where)
		}
		ids[e.ID] = true
		k := &Key{ID: e.ID, exact: map[string]bool{}, Metrics: e.Metrics, Rate: e.Rate, Burst: e.Burst, MaxInFlight: e.MaxInFlight}
		h, err := hex.DecodeString(e.SecretSHA256)
		if err != nil || len(h) != sha256.Size {
			return nil, fmt.Errorf("%s: secret_sha256: want the 64 hex digits of the secret's SHA-256 (query keygen prints them)", where)
		}
		copy(k.hash[:], h)
		if other, dup := hashes[k.hash]; dup {
			return nil, fmt.Errorf("%s: the same secret as key %q", where, other)
		}
		hashes[k.hash] = e.ID
		if len(e.Apps) == 0 {
			return nil, fmt.Errorf("%s: apps: empty; list the app ids or prefixes (com.acme.*) the key may read", where)
		}
		for _, a := range e.Apps {
			switch {
			case strings.Contains(strings.TrimSuffix(a, "*"), "*"):
				return nil, fmt.Errorf("%s: apps: %s: '*' only at the end", where, quote(a))
			case strings.HasSuffix(a, "*"):
				k.prefix = append(k.prefix, strings.TrimSuffix(a, "*"))
			case a == "" || len(a) > MaxAppBytes:
				return nil, fmt.Errorf("%s: apps: %s: want an app id of 1–%d bytes, or a prefix ending in '*'", where, quote(a), MaxAppBytes)
			default:
				k.exact[a] = true
			}
		}
		if math.IsNaN(e.Rate) || e.Rate < 0 || e.Burst < 0 || e.MaxInFlight < 0 {
			return nil, fmt.Errorf("%s: rate, burst and max_in_flight must not be negative", where)
		}
		ks.keys = append(ks.keys, k)
	}
	return ks, nil
}

// LoadKeys reads and parses the keys file at path.
func LoadKeys(path string) (*Keys, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("keys: %w", err)
	}
	defer f.Close()
	ks, err := ParseKeys(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return ks, nil
}

// NewSecret returns a new random secret and its keys-file entry.
func NewSecret(id string, apps []string) (secret string, entry KeyEntry, err error) {
	if !keyID.MatchString(id) {
		return "", KeyEntry{}, fmt.Errorf("id %s: want 1–64 letters, digits, '.', '_' or '-'", quote(id))
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", KeyEntry{}, err
	}
	secret = "lk_" + hex.EncodeToString(b)
	h := sha256.Sum256([]byte(secret))
	entry = KeyEntry{ID: id, SecretSHA256: hex.EncodeToString(h[:]), Apps: slices.Clone(apps)}
	// The entry must parse as it is printed.
	if _, err := ParseKeys(strings.NewReader(`{"keys":[` + mustJSON(entry) + `]}`)); err != nil {
		return "", KeyEntry{}, err
	}
	return secret, entry, nil
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

type keyCtx struct{}

// WithKey returns ctx carrying the key a request was made with: the
// Service then answers only for the apps the key allows.
func WithKey(ctx context.Context, k *Key) context.Context { return context.WithValue(ctx, keyCtx{}, k) }

// KeyOf returns the key of ctx, or nil for a request without keys (the
// CLI, or a server run with --insecure_no_auth).
func KeyOf(ctx context.Context) *Key {
	k, _ := ctx.Value(keyCtx{}).(*Key)
	return k
}

// ForbiddenError is a request for an app outside the key's scope (HTTP
// 403). Its text is the same for every app outside the scope: it does not
// repeat the app, and does not say whether it exists.
type ForbiddenError struct {
	Key string
}

func (e *ForbiddenError) Error() string {
	return fmt.Sprintf("key %s may not read that app", quote(e.Key))
}

// allow returns a ForbiddenError if ctx's key may not read app.
func allow(ctx context.Context, app string) error {
	if k := KeyOf(ctx); k != nil && !k.Allows(app) {
		return &ForbiddenError{Key: k.ID}
	}
	return nil
}
