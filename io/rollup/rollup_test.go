package rollup

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/lumenhq/lumen/aggregate"
	"github.com/lumenhq/lumen/event"
	"github.com/lumenhq/lumen/io/raw"
)

var day = time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)

// now is the runs' clock in these tests: ten days after the partition.
var now = day.AddDate(0, 0, 10).UnixMilli()

func sample(t testing.TB, n int) Rollup {
	t.Helper()
	p := raw.Partition{Kind: event.AppLoad, Day: day, Hour: 10}
	fn := aggregate.CombineFn{Gran: aggregate.Hour, Precision: 14}
	aggs := map[aggregate.AppKey]aggregate.Agg{}
	for i := 0; i < n; i++ {
		at := day.Add(time.Duration(i%30) * time.Hour).UnixMilli() // some days before, at and after
		e := event.Event{Kind: event.AppLoad, AppID: fmt.Sprint("app", i%3), AppVersion: fmt.Sprint("1.", i%2), Platform: "ios",
			DeviceID: []byte(fmt.Sprint("d", i)), EventTime: at, ReceivedTime: at}
		k := aggregate.AppKey{Kind: e.Kind, AppID: e.AppID}
		aggs[k] = fn.AddEvent(aggs[k], &e)
	}
	m := NewManifest([]raw.FileSplit{
		{Path: "root/raw/app_load/dt=2026-11-20/hr=10/b.avro", Size: 20, Version: "v2"},
		{Path: "root/raw/app_load/dt=2026-11-20/hr=10/a.avro", Size: 10, Version: "v1"},
	})
	return Rollup{Partition: p, Precision: 14, Manifest: m,
		Counters: Counters{Files: 2, Bytes: 30, Events: int64(n), ClockSkew: 3, DeadLetters: map[string]int64{"empty_app_id": 2, "future_time": 1}},
		Times:    TimeBounds{Latest: day.Add(29 * time.Hour).UnixMilli(), FutureFrom: time.Date(2090, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()},
		Aggs:     aggs}
}

// rows renders a rollup's aggregates as comparable text.
func rows(t testing.TB, r Rollup) map[string]string {
	t.Helper()
	out := map[string]string{}
	for k, a := range r.Aggs {
		counts, err := a.CountRows(k, aggregate.Hour)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range counts {
			out[c.String()] = fmt.Sprint(c.Count)
		}
		users, err := a.UserRows(k)
		if err != nil {
			t.Fatal(err)
		}
		for _, u := range users {
			out[fmt.Sprintf("%v/%s/%d", k, u.AppVersion, u.Day)] = fmt.Sprintf("%x", u.Sketch)
		}
	}
	return out
}

func TestRoundTrip(t *testing.T) {
	r := sample(t, 500)
	b, err := Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Unmarshal(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.Partition != r.Partition || got.Precision != r.Precision || !reflect.DeepEqual(got.Manifest, r.Manifest) ||
		!reflect.DeepEqual(got.Counters, r.Counters) || got.Times != r.Times || !reflect.DeepEqual(rows(t, got), rows(t, r)) {
		t.Error("the rollup changed through its file form")
	}
	if err := got.Check(r.Partition, r.Manifest, 14, now, time.Hour); err != nil {
		t.Errorf("a rollup does not check against its own partition and manifest: %v", err)
	}
}

// A rollup proves itself or is not used: any other partition, precision
// or manifest, or whose time bounds do not hold at the run's clock, is
// ErrInvalid.
func TestCheck(t *testing.T) {
	r := sample(t, 50)
	changed := append(Manifest(nil), r.Manifest...)
	changed[0].Version = "v9"
	other := r.Partition
	other.Hour = 11
	soon, ahead := r, r
	soon.Times.FutureFrom = now + (30 * time.Minute).Milliseconds() // dead-lettered then, counted now
	ahead.Times.Latest = now + (2 * time.Hour).Milliseconds()       // counted then, beyond this run's bound
	for name, err := range map[string]error{
		"a future_time event now within the bound": soon.Check(r.Partition, r.Manifest, 14, now, time.Hour),
		"a counted event beyond the bound":         ahead.Check(r.Partition, r.Manifest, 14, now, time.Hour),
		"another partition":                        r.Check(other, r.Manifest, 14, now, time.Hour),
		"another precision":                        r.Check(r.Partition, r.Manifest, 12, now, time.Hour),
		"a changed file":                           r.Check(r.Partition, changed, 14, now, time.Hour),
		"a missing file":                           r.Check(r.Partition, r.Manifest[:1], 14, now, time.Hour),
	} {
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
	}
}

// A truncated or garbled file is ErrInvalid, never a different rollup.
func TestDamageIsInvalid(t *testing.T) {
	r := sample(t, 300)
	b, err := Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	want := rows(t, r)
	for i := 0; i < len(b); i++ {
		if _, err := Unmarshal(b[:i]); !errors.Is(err, ErrInvalid) {
			t.Fatalf("a %d-byte prefix of %d: %v, want ErrInvalid", i, len(b), err)
		}
	}
	flipped := 0
	for i := 0; i < len(b); i += 3 {
		c := bytes.Clone(b)
		c[i] ^= 0x41
		got, err := Unmarshal(c)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("byte %d flipped: %v, want ErrInvalid", i, err)
			}
			flipped++
			continue
		}
		if !reflect.DeepEqual(rows(t, got), want) || !reflect.DeepEqual(got.Counters, r.Counters) {
			t.Fatalf("byte %d flipped: a different rollup decoded without error", i)
		}
	}
	t.Logf("%d of %d flips detected; the rest hit bytes that do not matter (the header's padding, sync marker copies)", flipped, (len(b)+2)/3)
}

func TestManifest(t *testing.T) {
	a := []raw.FileSplit{{Path: "x/1.avro", Size: 5, Version: "a"}, {Path: "x/2.avro", Size: 7, Version: "b"}}
	b := []raw.FileSplit{a[1], a[0], {Path: "x/1.avro", Size: 5, Version: "a", Start: 2, End: 5}} // another order, a split
	if NewManifest(a).Hash() != NewManifest(b).Hash() {
		t.Error("the hash depends on the listing's order or on splits")
	}
	for name, c := range map[string][]raw.FileSplit{
		"resized":   {{Path: "x/1.avro", Size: 6, Version: "a"}, a[1]},
		"rewritten": {{Path: "x/1.avro", Size: 5, Version: "z"}, a[1]},
		"added":     {a[0], a[1], {Path: "x/3.avro", Size: 1}},
	} {
		if NewManifest(c).Hash() == NewManifest(a).Hash() {
			t.Errorf("%s: the manifest hash did not change", name)
		}
	}
}

// Rollups are written atomically where Path says, and found by List, one
// listing per kind and day.
func TestWriteReadList(t *testing.T) {
	root := t.TempDir()
	ctx := context.Background()
	r := sample(t, 40)
	path := Path(root, r.Partition, r.Manifest)
	if err := Write(ctx, path, r); err != nil {
		t.Fatal(err)
	}
	got, n, err := Read(ctx, path)
	if err != nil || n == 0 || !reflect.DeepEqual(rows(t, got), rows(t, r)) {
		t.Fatalf("read back: %d bytes, %v", n, err)
	}
	if _, _, err := Read(ctx, path+".missing"); !errors.Is(err, ErrInvalid) {
		t.Errorf("a missing rollup: %v, want ErrInvalid", err)
	}
	listed, err := List(ctx, root, day, day, 4)
	if err != nil {
		t.Fatal(err)
	}
	if want := map[raw.Partition][]string{r.Partition: {path}}; !reflect.DeepEqual(listed, want) {
		t.Errorf("List = %v, want %v", listed, want)
	}
}

func FuzzUnmarshal(f *testing.F) {
	b, _ := Marshal(sample(f, 20))
	f.Add(b)
	f.Add([]byte("Obj\x01"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if _, err := Unmarshal(b); err != nil && !errors.Is(err, ErrInvalid) {
			t.Fatalf("Unmarshal: %v, want nil or ErrInvalid", err)
		}
	})
}
