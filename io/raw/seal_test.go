package raw

import (
	"context"
	"os"
	"reflect"
	"testing"
	"time"

	"github.com/lumenhq/lumen/event"
	"github.com/lumenhq/lumen/io/blob"
	"github.com/lumenhq/lumen/io/s3fs"
	"github.com/lumenhq/lumen/testing/s3test"
)

// Seals on a local directory and on S3 (gofakes3): what is missing, what
// is newest, rewriting, and that the batch's raw listing never sees a seal.
func TestSeals(t *testing.T) {
	for _, fs := range []string{"local", "gofakes3"} {
		t.Run(fs, func(t *testing.T) {
			root := t.TempDir()
			if fs == "gofakes3" {
				e := s3test.Fake(t)
				s3fs.Configure(e.Options)
				root = e.Root("lumen")
			}
			testSeals(t, root)
		})
	}
}

func testSeals(t *testing.T, root string) {
	ctx := context.Background()
	day := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)
	all := make([]int, 24)
	for h := range all {
		all[h] = h
	}

	if _, ok, err := LatestSeal(ctx, root, event.Crash); err != nil || ok {
		t.Fatalf("LatestSeal of an empty root: ok %v, err %v; want none", ok, err)
	}
	if got, err := Sealed(ctx, root, event.Crash, day); err != nil || !reflect.DeepEqual(got, all) {
		t.Fatalf("Sealed of an empty root = %v, %v; want every hour", got, err)
	}

	// Every hour of the day before, and hours 0..20 but 7 of day, for crash.
	for h := range 24 {
		if err := WriteSeal(ctx, root, event.Crash, day.Add(time.Duration(h-24)*time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	for h := range 21 {
		if h == 7 {
			continue
		}
		// Any instant inside the hour names it.
		if err := WriteSeal(ctx, root, event.Crash, day.Add(time.Duration(h)*time.Hour+42*time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	// Rewriting is harmless.
	if err := WriteSeal(ctx, root, event.Crash, day.Add(3*time.Hour)); err != nil {
		t.Fatal(err)
	}
	// A raw file of the same hour, and an object that is not a seal.
	if err := blob.WriteFile(ctx, HourDir(root, event.Crash, day.Add(3*time.Hour))+"/part-00000.avro", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := blob.WriteFile(ctx, sealDayDir(root, event.Crash, day)+"/hr=99", nil); err != nil {
		t.Fatal(err)
	}

	if got, err := Sealed(ctx, root, event.Crash, day.Add(-24*time.Hour)); err != nil || len(got) != 0 {
		t.Errorf("Sealed(the complete day) = %v, %v; want none missing", got, err)
	}
	if got, want := mustSealed(t, root, event.Crash, day.Add(13*time.Hour)), []int{7, 21, 22, 23}; !reflect.DeepEqual(got, want) {
		t.Errorf("Sealed(day) = %v, want %v", got, want)
	}
	if got := mustSealed(t, root, event.AppLoad, day); !reflect.DeepEqual(got, all) {
		t.Errorf("Sealed(another kind) = %v, want every hour", got)
	}
	latest, ok, err := LatestSeal(ctx, root, event.Crash)
	if want := day.Add(20 * time.Hour); err != nil || !ok || !latest.Equal(want) {
		t.Errorf("LatestSeal = %v, %v, %v; want %v", latest, ok, err, want)
	}
	if got, want := SealPath(root, event.Crash, day.Add(5*time.Hour)), root+"/seal/crash/dt=2026-11-23/hr=05"; got != want {
		t.Errorf("SealPath = %s, want %s", got, want)
	}

	// The raw listing and the newest arrival day see raw files only.
	files, err := ListWindow(ctx, root, day.Add(-24*time.Hour), day, PlanOptions{})
	if err != nil || len(files) != 1 {
		t.Errorf("ListWindow = %v, %v; want the one raw file", files, err)
	}
	if d, err := LatestArrivalDay(ctx, root, time.Time{}); err != nil || !d.Equal(day) {
		t.Errorf("LatestArrivalDay = %v, %v; want %v", d, err, day)
	}
}

func mustSealed(t *testing.T, root string, k event.Kind, day time.Time) []int {
	t.Helper()
	got, err := Sealed(context.Background(), root, k, day)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// A local seal is a plain file of its own directory tree.
func TestSealLayoutLocal(t *testing.T) {
	root := t.TempDir()
	hour := time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC)
	if err := WriteSeal(context.Background(), root, event.HandledException, hour); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(root + "/seal/handled_exception/dt=2026-11-24/hr=09")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(b), "sealed handled_exception 2026-11-24T09:00:00Z\n"; got != want {
		t.Errorf("seal content %q, want %q", got, want)
	}
}
