package launch

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

// The stop filter drops nothing: after a deliberate stop, prism's reports
// of the cancel are logged at INFO, marked expected, and every other
// warning and error keeps its level, however soon after the stop.
func TestStopFilterDropsNothing(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(stopFilter{slog.NewTextHandler(&buf, nil)})
	cancelled := fmt.Errorf("bundle: %w", context.Canceled)
	lines := func() []string { return strings.Split(strings.TrimSpace(buf.String()), "\n") }

	stopped.Store(false)
	t.Cleanup(func() { stopped.Store(false) })
	log.Error("Bundle Failed.", slog.Any("error", cancelled))
	if l := lines(); len(l) != 1 || !strings.Contains(l[0], "level=ERROR") {
		t.Fatalf("before any stop, a cancelled bundle is an error: %q", l)
	}
	buf.Reset()
	stopped.Store(true)
	log.Error("Bundle Failed.", slog.Any("error", cancelled))
	log.Error("job failed", "error", cancelled)
	log.Error("stage.Execute aborting due to bundle error", "stage", "s1")
	log.Error("cassandraio: final flush failed", "error", errors.New("write timeout"))
	log.Warn("kafkaio: partition lag", "partition", 3)
	l := lines()
	if len(l) != 5 {
		t.Fatalf("%d lines logged of 5: %q", len(l), l)
	}
	for i, want := range []string{"level=INFO", "level=INFO", "level=INFO", "level=ERROR", "level=WARN"} {
		if !strings.Contains(l[i], want) {
			t.Errorf("line %d: %q, want %s", i, l[i], want)
		}
		if want == "level=INFO" && !strings.Contains(l[i], "expected=") {
			t.Errorf("line %d: %q does not say it was expected", i, l[i])
		}
	}
}
