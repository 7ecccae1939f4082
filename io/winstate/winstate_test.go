package winstate

import (
	"context"
	"errors"
	"fmt"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lumenhq/lumen/aggregate"
	"github.com/lumenhq/lumen/event"
	"github.com/lumenhq/lumen/io/blob"
	"github.com/lumenhq/lumen/io/raw"
	"github.com/lumenhq/lumen/io/rollup"
	"github.com/lumenhq/lumen/io/s3fs"
	"github.com/lumenhq/lumen/testing/s3test"
)

var day0 = time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)

// aggs makes hour Aggs of n apps with a few events each.
func aggs(n int) map[aggregate.AppKey]aggregate.Agg {
	out := map[aggregate.AppKey]aggregate.Agg{}
	for i := range n {
		fn := aggregate.CombineFn{Gran: aggregate.Hour, Precision: 14}
		a := fn.CreateAccumulator()
		for j := range 20 {
			e := event.Event{Kind: event.Crash, AppID: fmt.Sprintf("app-%d", i), AppVersion: fmt.Sprint(j % 3), Platform: "ios",
				DeviceID: []byte(fmt.Sprintf("d%d", j)), EventTime: day0.Add(time.Duration(j) * time.Hour).UnixMilli(), Signature: "s"}
			e.ReceivedTime = e.EventTime
			a = fn.AddEvent(a, &e)
		}
		out[aggregate.AppKey{Kind: event.Crash, AppID: fmt.Sprintf("app-%d", i)}] = a
	}
	return out
}

func rowsOf(t *testing.T, m map[aggregate.AppKey]aggregate.Agg) string {
	t.Helper()
	var lines []string
	for k, a := range m {
		c, err := a.CountRows(k, aggregate.Hour, aggregate.Day)
		if err != nil {
			t.Fatal(err)
		}
		u, err := a.UserRows(k)
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, fmt.Sprint(k, c, len(u)))
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

func roots(t *testing.T) map[string]string {
	e := s3test.Fake(t)
	s3fs.Configure(e.Options)
	return map[string]string{"local": t.TempDir(), "gofakes3": e.Root("lake")}
}

// A state round-trips: its manifest and its shards read back as written;
// Find lists it, newest first; Remove takes all of it.
func TestRoundTrip(t *testing.T) {
	for name, root := range roots(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			p := raw.Partition{Kind: event.Crash, Day: day0, Hour: -1}
			in := aggs(5)
			var older State
			for i, stamp := range []int64{100, 200} {
				sh, err := WriteShard(ctx, root, day0, stamp, in)
				if err != nil {
					t.Fatal(err)
				}
				s := State{AsOf: day0.AddDate(0, 0, i), WindowDays: 30, Precision: 14, Grain: raw.GrainDay, Stamp: stamp, Shards: []Shard{sh},
					Parts: []Part{{Partition: p, Hash: "h", Counters: rollup.Counters{Files: 3, Bytes: 10, Events: 100, ClockSkew: 2,
						DeadLetters: map[string]int64{"undecodable": 1}}, Times: rollup.TimeBounds{Latest: 5}, Days: map[int64]int64{day0.UnixMilli(): 100}}}}
				if i == 0 {
					// The shard lives with its own state.
					s.AsOf = day0
					older = s
				} else {
					s.AsOf = day0
					s.Stamp = 200
				}
				if err := Write(ctx, root, s); err != nil {
					t.Fatal(err)
				}
			}
			found, err := Find(ctx, root, day0.AddDate(0, 0, -1), day0.AddDate(0, 0, 1))
			if err != nil {
				t.Fatal(err)
			}
			if len(found) != 2 || !strings.HasSuffix(found[0], "200.json") || !strings.HasSuffix(found[1], "100.json") {
				t.Fatalf("found %v, want the stamp-200 state, then the stamp-100 one", found)
			}
			got, err := Read(ctx, found[1])
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, older) {
				t.Errorf("read %+v, want %+v", got, older)
			}
			out, err := ReadShard(ctx, root, got, got.Shards[0])
			if err != nil {
				t.Fatal(err)
			}
			if len(out) != 5 || rowsOf(t, out) != rowsOf(t, in) {
				t.Errorf("the shard's %d keys differ from the %d written", len(out), len(in))
			}
			if err := Remove(ctx, found[1]); err != nil {
				t.Fatal(err)
			}
			if found, _ := Find(ctx, root, day0, day0); len(found) != 1 {
				t.Errorf("after Remove: %v, want one state", found)
			}
			if _, err := ReadShard(ctx, root, got, got.Shards[0]); !errors.Is(err, ErrInvalid) {
				t.Errorf("a removed state's shard: %v, want ErrInvalid", err)
			}
		})
	}
}

// Damage is never trusted: a changed byte in a shard or in the manifest,
// a truncated shard, another format or semantics are all ErrInvalid.
func TestDamage(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	sh, err := WriteShard(ctx, root, day0, 7, aggs(3))
	if err != nil {
		t.Fatal(err)
	}
	s := State{AsOf: day0, WindowDays: 30, Precision: 14, Grain: raw.GrainDay, Stamp: 7, Shards: []Shard{sh}}
	if err := Write(ctx, root, s); err != nil {
		t.Fatal(err)
	}
	shardPath := Dir(root, day0, 7) + "/" + sh.Name
	good, _ := os.ReadFile(shardPath)
	for name, damage := range map[string]func([]byte) []byte{
		"a flipped byte": func(b []byte) []byte { b[len(b)/2] ^= 1; return b },
		"truncated":      func(b []byte) []byte { return b[:len(b)-3] },
	} {
		os.WriteFile(shardPath, damage(append([]byte(nil), good...)), 0o644)
		if _, err := ReadShard(ctx, root, s, sh); !errors.Is(err, ErrInvalid) {
			t.Errorf("shard %s: %v, want ErrInvalid", name, err)
		}
	}
	manifestPath := Path(root, day0, 7)
	m, _ := os.ReadFile(manifestPath)
	for name, edit := range map[string]func(string) string{
		"an edited count":  func(s string) string { return strings.Replace(s, `"window_days": 30`, `"window_days": 31`, 1) },
		"another format":   func(s string) string { return strings.Replace(s, `"format": 1`, `"format": 9`, 1) },
		"not JSON":         func(s string) string { return s[:len(s)/2] },
		"another checksum": func(s string) string { return strings.Replace(s, `"sha256": "`, `"sha256": "0`, 1) },
	} {
		os.WriteFile(manifestPath, []byte(edit(string(m))), 0o644)
		if _, err := Read(ctx, manifestPath); !errors.Is(err, ErrInvalid) {
			t.Errorf("manifest with %s: %v, want ErrInvalid", name, err)
		}
	}
	if _, err := Read(ctx, Path(root, day0, 8)); !errors.Is(err, ErrInvalid) {
		t.Errorf("a missing manifest: %v, want ErrInvalid", err)
	}
	// A manifest of another semantics, sealed properly.
	other := manifest{Format: Format, Semantics: rollup.Semantics + 1, AsOf: "2026-11-20", WindowDays: 30, Precision: 14, Grain: "day", Stamp: 7}
	b, _ := seal(other)
	blob.WriteFile(ctx, manifestPath, b)
	if _, err := Read(ctx, manifestPath); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "semantics") {
		t.Errorf("another semantics: %v, want ErrInvalid saying so", err)
	}
}
