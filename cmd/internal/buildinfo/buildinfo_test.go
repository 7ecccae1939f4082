package buildinfo

import (
	"runtime"
	"strings"
	"testing"
)

func TestString(t *testing.T) {
	s := String("batch")
	if !strings.HasPrefix(s, "lumen batch ") || !strings.HasSuffix(s, runtime.Version()) || !strings.Contains(s, "commit ") {
		t.Errorf("String = %q, want lumen batch <version> commit … %s", s, runtime.Version())
	}
}
