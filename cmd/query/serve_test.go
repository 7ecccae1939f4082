package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lumenhq/lumen/serving/api"
)

// keyEntry makes a key with query keygen, as an operator would, and
// returns its secret and entry.
func keyEntry(t *testing.T, id, apps string) (string, json.RawMessage) {
	t.Helper()
	var out bytes.Buffer
	if err := run(context.Background(), "keygen", []string{"--id", id, "--apps", apps}, &out); err != nil {
		t.Fatal(err)
	}
	var secret, entry string
	for _, l := range strings.Split(out.String(), "\n") {
		if i := strings.Index(l, "): "); strings.HasPrefix(l, "secret") && i > 0 {
			secret = l[i+3:]
		}
		if i := strings.Index(l, "): "); strings.HasPrefix(l, "keys file entry") && i > 0 {
			entry = l[i+3:]
		}
	}
	if secret == "" || !json.Valid([]byte(entry)) {
		t.Fatalf("keygen printed %q", out.String())
	}
	return secret, json.RawMessage(entry)
}

func writeKeys(t *testing.T, path string, entries ...json.RawMessage) {
	t.Helper()
	b, _ := json.Marshal(map[string][]json.RawMessage{"keys": entries})
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// query serve --keys: a request needs a key; SIGHUP reloads the file, and
// a broken file keeps the keys in use. Without --keys, a non-loopback
// --addr is refused.
func TestServeKeys(t *testing.T) {
	dir := t.TempDir()
	store := "sqlite:" + filepath.Join(dir, "q.db")
	keys := filepath.Join(dir, "keys.json")
	secretA, entryA := keyEntry(t, "a", "com.a.*")
	secretB, entryB := keyEntry(t, "b", "com.b.app")
	writeKeys(t, keys, entryA)

	for _, c := range []struct{ args []string }{
		{[]string{"--addr", "0.0.0.0:0"}},
		{[]string{"--addr", "0.0.0.0:0", "--allow_host", "lumen.example"}},
	} {
		err := run(context.Background(), "serve", append(c.args, "--store", store), &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), "--keys") || !strings.Contains(err.Error(), "--insecure_no_auth") {
			t.Errorf("serve %v without keys: %v, want a refusal naming --keys and --insecure_no_auth", c.args, err)
		}
	}
	if err := run(context.Background(), "serve", []string{"--keys", filepath.Join(dir, "none.json"), "--store", store}, &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "--keys") {
		t.Errorf("serve with a missing keys file: %v", err)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	log := &syncBuffer{}
	logOutput = log
	t.Cleanup(func() { logOutput = os.Stderr })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, "serve", []string{"--addr", addr, "--keys", keys, "--store", store}, &bytes.Buffer{})
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	}()
	status := func(secret string) int {
		req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/v1/apps", nil)
		req.Header.Set("Authorization", "Bearer "+secret)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			return -1
		}
		res.Body.Close()
		return res.StatusCode
	}
	// waitFor polls until the server answers want for secret: a condition,
	// not a sleep.
	waitFor := func(secret string, want int, what string) {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			got := status(secret)
			if got == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d, want %d", what, got, want)
			}
			select {
			case err := <-done:
				t.Fatalf("serve stopped: %v", err)
			default:
			}
		}
	}
	waitFor(secretA, 200, "key A")
	if got := status(secretB); got != 401 {
		t.Errorf("key B before it is added: %d, want 401", got)
	}
	if got := status(""); got != 401 {
		t.Errorf("no key: %d, want 401", got)
	}

	writeKeys(t, keys, entryA, entryB)
	syscall.Kill(os.Getpid(), syscall.SIGHUP)
	waitFor(secretB, 200, "key B after SIGHUP")

	// A broken file: the reload is refused and logged, and both keys
	// still work.
	os.WriteFile(keys, []byte(`{"keys": [`), 0o600)
	syscall.Kill(os.Getpid(), syscall.SIGHUP)
	for deadline := time.Now().Add(30 * time.Second); !strings.Contains(log.String(), "kept the keys in use"); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no log line of the refused reload:\n%s", log.String())
		}
	}
	if a, b := status(secretA), status(secretB); a != 200 || b != 200 {
		t.Errorf("after a broken keys file: A %d, B %d, want both 200", a, b)
	}
	writeKeys(t, keys, entryB) // then A removed
	syscall.Kill(os.Getpid(), syscall.SIGHUP)
	waitFor(secretA, 401, "key A after it is removed")
	if got := status(secretB); got != 200 {
		t.Errorf("key B after the reloads: %d", got)
	}
}

func TestKeygen(t *testing.T) {
	secret, entry := keyEntry(t, "acme", "com.acme.*,com.other.app")
	ks, err := api.ParseKeys(strings.NewReader(fmt.Sprintf(`{"keys":[%s]}`, entry)))
	if err != nil {
		t.Fatal(err)
	}
	k := ks.Lookup(secret)
	if k == nil || k.ID != "acme" || !k.Allows("com.acme.x") || !k.Allows("com.other.app") || k.Allows("com.other.apps") {
		t.Errorf("the keygen entry %s does not give the secret's key its apps", entry)
	}
	if strings.Contains(string(entry), secret) {
		t.Error("the entry holds the secret")
	}
	if err := run(context.Background(), "keygen", []string{"--id", "x"}, &bytes.Buffer{}); err == nil || errors.Is(err, nil) {
		t.Errorf("keygen without --apps: %v", err)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
