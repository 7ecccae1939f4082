package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"regexp"
	"strings"
	"testing"
)

// TestUsage: the usage text names every flag of every command, and states
// each flag's default as its flag set does.
func TestUsage(t *testing.T) {
	var help bytes.Buffer
	flagOutput = &help
	t.Cleanup(func() { flagOutput = nil })
	defaults := usage[strings.Index(usage, "Defaults:"):]
	flagLine := regexp.MustCompile(`(?m)^  -(\w+)(?: \w+)?\n(?:\s+.*\n)*?\s+.*?(?:\(default (.+)\))?$`)
	for _, cmd := range []string{"counts", "users", "active", "crash-free", "late", "runs", "serve", "keygen"} {
		help.Reset()
		if err := run(context.Background(), cmd, []string{"-h"}, io.Discard); !errors.Is(err, flag.ErrHelp) {
			t.Fatalf("query %s -h: %v, want flag.ErrHelp", cmd, err)
		}
		// A command's line, and the lines that continue it (indented
		// past "query").
		line, in := "", false
		for _, l := range strings.Split(usage, "\n") {
			if f := strings.Fields(l); len(f) > 1 && f[0] == "query" {
				in = f[1] == cmd
				if in {
					line = l
				}
			} else if in && strings.HasPrefix(l, "                   ") {
				line += l
			} else {
				in = false
			}
		}
		if line == "" {
			t.Errorf("the usage has no line for %s", cmd)
			continue
		}
		ms := flagLine.FindAllStringSubmatch(help.String(), -1)
		if len(ms) < 2 {
			t.Fatalf("query %s -h lists %d flags:\n%s", cmd, len(ms), help.String())
		}
		for _, m := range ms {
			name, def := m[1], strings.Trim(m[2], `"`)
			if name == "cassandra_username" || name == "cassandra_password_file" {
				if !strings.Contains(usage, "--"+name) {
					t.Errorf("the usage does not mention --%s", name)
				}
				continue
			}
			if !strings.Contains(line, "--"+name+" ") && !strings.Contains(line, "--"+name+"]") {
				t.Errorf("query %s has --%s, which its usage line does not show: %q", cmd, name, line)
			}
			switch {
			case def == "":
			case cmd == "runs" && name == "kind":
				if !strings.Contains(defaults, "(runs: "+def+")") {
					t.Errorf("the usage does not give runs' --kind default %q", def)
				}
			case !strings.Contains(defaults, "--"+name+" "+def):
				t.Errorf("query %s --%s defaults to %q, which the usage's defaults do not say", cmd, name, def)
			}
		}
	}
}
