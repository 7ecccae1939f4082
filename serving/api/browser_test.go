package api_test

import (
	"bytes"
	"context"
	"flag"
	"image"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/lumenhq/lumen/serving/api"
	"github.com/lumenhq/lumen/testing/servicetest"
)

var screenshot = flag.String("screenshot", "", "also save the dashboard's screenshot to this PNG file (the README's is docs/dashboard.png)")

// chromium finds a browser: $LUMEN_TEST_CHROMIUM (exported by
// `testing/services/up chromium`), else chromium on the PATH.
func chromium(t *testing.T) string {
	if p := os.Getenv("LUMEN_TEST_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	servicetest.Missing(t, "chromium", "LUMEN_TEST_CHROMIUM is not set and no chromium is on the PATH; the dashboard is NOT tested")
	return ""
}

// TestDashboardInChromium drives headless Chromium against a server on a
// seeded store: every chart renders with points, the live chart gains
// points when the speed layer writes new minutes, and a bad app id shows
// a message instead of a blank page.
func TestDashboardInChromium(t *testing.T) {
	exe := chromium(t)
	now := time.Now().UTC()
	sd := newSeed(now, 3*time.Minute)
	st := openSQLite(t)
	s := newServer(t, st, sd)

	ctx, eval := browser(t, exe)
	day := sd.today.Format(time.DateOnly)
	points := func(sel string) int {
		t.Helper()
		n, err := strconv.Atoi(eval(`document.querySelector('` + sel + `').dataset.points`))
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if err := chromedp.Do(ctx,
		chromedp.Navigate(s.URL+"/?app=com.acme.notes&date="+day),
		chromedp.WaitVisible(`body[data-loaded="true"]`),
	); err != nil {
		t.Fatalf("dashboard did not load: %v", err)
	}
	for _, c := range []struct {
		sel    string
		canvas bool
	}{{"#chart-live", true}, {"#chart-daily", true}, {"#chart-dau", true}, {"#crashfree", false}, {"#ledger", false}} {
		if n := points(c.sel); n == 0 {
			t.Errorf("%s shows no points", c.sel)
		}
		if c.canvas {
			if w, _ := strconv.Atoi(eval(`(document.querySelector('` + c.sel + ` canvas') || {width: 0}).width`)); w < 300 {
				t.Errorf("%s has no drawn canvas (width %d)", c.sel, w)
			}
		}
	}
	// The daily chart has loads on all 30 days (29 batch, today speed), and
	// the tiles show the numbers.
	daily := eval(`lumenDashboard.charts['chart-daily'].data[1].filter(v => v > 0).length`)
	mau, crashFree, late := eval(`document.getElementById('kpi-mau').textContent`), eval(`document.getElementById('kpi-cf').textContent`), eval(`document.getElementById('kpi-late').textContent`)
	if daily != "30" || mau == "–" || crashFree == "–" || late != "40" {
		t.Errorf("daily loads on %s days (want 30), MAU %q, crash-free %q, late %q (want 40)", daily, mau, crashFree, late)
	}

	// The stream writes the last minutes: the live chart picks them up on
	// its next refresh.
	before := points("#chart-live")
	sd.release(t, st)
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`Number(document.querySelector('#chart-live').dataset.points) > `+strconv.Itoa(before),
		chromedp.WithPollingTimeout(2*time.Minute))); err != nil {
		t.Errorf("the live chart stayed at %d points after new speed rows: %v", before, err)
	}

	// The page as a person sees it, now that the last minutes are in.
	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(shot))
	if err != nil {
		t.Fatalf("screenshot is not a PNG: %v", err)
	}
	if b := img.Bounds(); b.Dx() < 1000 || b.Dy() < 800 || uniform(img) {
		t.Errorf("screenshot %v looks blank", b)
	}
	out := filepath.Join(t.TempDir(), "dashboard.png")
	if *screenshot != "" {
		out = *screenshot
	}
	if err := os.WriteFile(out, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", out)

	// A bad app id: a message, not a blank page.
	if err := chromedp.Do(ctx, chromedp.Navigate(s.URL+"/?app=no.such.app"), chromedp.WaitVisible(`#banner`)); err != nil {
		t.Fatalf("no message for a bad app: %v", err)
	}
	msg, mainHidden := eval(`document.getElementById('banner').textContent`), eval(`document.getElementById('main').hidden`)
	if !strings.Contains(msg, "no.such.app") || mainHidden != "true" {
		t.Errorf("bad app: banner %q, charts hidden %s", msg, mainHidden)
	}
}

// browser starts headless Chromium for the test, and returns its context
// and a function evaluating a JavaScript expression to a string.
func browser(t *testing.T, exe string) (context.Context, func(string) string) {
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe), chromedp.NoSandbox, chromedp.WindowSize(1440, 1500),
		chromedp.Flag("headless", "new"), chromedp.Flag("disable-gpu", true), chromedp.Flag("hide-scrollbars", true))
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancel)
	ctx, cancel := chromedp.NewContext(actx, chromedp.WithErrorf(t.Logf))
	t.Cleanup(cancel)
	// Generous: a shared 2-core machine. Nothing asserts on time.
	ctx, cancel = context.WithTimeout(ctx, 3*time.Minute)
	t.Cleanup(cancel)
	eval := func(expr string) string {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Evaluate[string]("String("+expr+")"))
		if err != nil {
			t.Fatalf("evaluating %s: %v", expr, err)
		}
		return v
	}
	return ctx, eval
}

// TestDashboardKeysInChromium: against a server with keys, the dashboard
// asks for a key, says so when a key is refused, shows a tenant its own
// apps' charts and only its apps, refuses another tenant's app, and tells
// a key without access that it reads nothing.
func TestDashboardKeysInChromium(t *testing.T) {
	exe := chromium(t)
	sd := newSeed(time.Now().UTC(), 0)
	st := openSQLite(t)
	sd.write(t, st)
	keys := mustKeys(t, keysJSON([3]string{"a", secretA, "com.acme.notes,com.acme.c*"}, [3]string{"none", "lk_none", "com.nobody.*"}))
	srv := authServer(t, st, keys, api.DefaultKeyLimits, nil)
	ctx, eval := browser(t, exe)
	signIn := func(key string) {
		t.Helper()
		if err := chromedp.Do(ctx,
			chromedp.WaitVisible(`#login`),
			chromedp.SendKeys(`#key`, key),
			chromedp.Click(`#login button[type=submit]`),
		); err != nil {
			t.Fatalf("signing in: %v", err)
		}
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/")); err != nil {
		t.Fatal(err)
	}
	signIn("lk_wrong")
	if err := chromedp.Do(ctx, chromedp.WaitVisible(`#login-error`)); err != nil {
		t.Fatalf("no message for a refused key: %v", err)
	}
	if msg := eval(`document.getElementById('login-error').textContent`); !strings.Contains(msg, "refused") {
		t.Errorf("a refused key says %q", msg)
	}
	signIn(secretA)
	if err := chromedp.Do(ctx, chromedp.WaitVisible(`body[data-loaded="true"]`)); err != nil {
		t.Fatalf("the dashboard did not load with key A: %v", err)
	}
	if apps := eval(`[...document.getElementById('app').options].map(o => o.value).join(',')`); apps != "com.acme.chat,com.acme.notes" {
		t.Errorf("the app picker lists %q, want key A's apps only", apps)
	}
	if n := eval(`document.querySelector('#chart-daily').dataset.points`); n == "0" {
		t.Error("the daily chart shows no points with key A")
	}
	if k := eval(`sessionStorage.getItem('lumen.key') === '` + secretA + `' && localStorage.length === 0`); k != "true" {
		t.Error("the key is not kept in sessionStorage alone")
	}
	// Another tenant's app, asked for by URL: refused, charts hidden.
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/?app=com.acme.maps"), chromedp.WaitVisible(`#banner`)); err != nil {
		t.Fatalf("no message for another tenant's app: %v", err)
	}
	if msg, hidden := eval(`document.getElementById('banner').textContent`), eval(`document.getElementById('main').hidden`); !strings.Contains(msg, "may not read") || hidden != "true" {
		t.Errorf("another tenant's app: banner %q, charts hidden %s", msg, hidden)
	}
	// Sign out, then a key that reads no app.
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/"), chromedp.WaitVisible(`body[data-loaded="true"]`), chromedp.Click(`#signout`)); err != nil {
		t.Fatal(err)
	}
	signIn("lk_none")
	if err := chromedp.Do(ctx, chromedp.WaitVisible(`#banner`)); err != nil {
		t.Fatalf("no message for a key without apps: %v", err)
	}
	if msg := eval(`document.getElementById('banner').textContent`); !strings.Contains(msg, "no app") {
		t.Errorf("a key without apps: banner %q", msg)
	}
}

// uniform reports whether an image is one colour (a blank page).
func uniform(img image.Image) bool {
	b := img.Bounds()
	first := img.At(b.Min.X, b.Min.Y)
	for y := b.Min.Y; y < b.Max.Y; y += 7 {
		for x := b.Min.X; x < b.Max.X; x += 7 {
			if img.At(x, y) != first {
				return false
			}
		}
	}
	return true
}
