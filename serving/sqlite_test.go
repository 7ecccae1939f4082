package serving_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/lumenhq/lumen/serving"
	"github.com/lumenhq/lumen/serving/storetest"
)

func TestSQLiteConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) serving.Store {
		st, err := serving.Open(context.Background(), "sqlite:"+filepath.Join(t.TempDir(), "s.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	})
}

func TestOpenErrors(t *testing.T) {
	for _, url := range []string{"lumen.db", "postgres://x", "sqlite:"} {
		if _, err := serving.Open(context.Background(), url); err == nil {
			t.Errorf("Open(%q) succeeded", url)
		}
	}
}

func TestRedact(t *testing.T) {
	got := serving.Redact("cassandra://bob:hunter2@h1,h2:9042/lumen?rate=5&password=hunter2&tls=true")
	if want := "cassandra://REDACTED@h1,h2:9042/lumen?rate=5&password=REDACTED&tls=true"; got != want {
		t.Errorf("Redact = %q, want %q", got, want)
	}
}
