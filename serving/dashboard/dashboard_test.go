package dashboard

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestVendoredUPlotIsThePinnedBuild: the embedded uPlot files are the ones
// refresh-uplot.sh fetched (SHA256SUMS), at the version the script pins,
// with the licence beside them.
func TestVendoredUPlotIsThePinnedBuild(t *testing.T) {
	sums, err := fs.ReadFile(FS(), "vendor/uplot/SHA256SUMS")
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	sc := bufio.NewScanner(strings.NewReader(string(sums)))
	for sc.Scan() {
		want, name, ok := strings.Cut(sc.Text(), "  ")
		if !ok {
			t.Fatalf("SHA256SUMS line %q", sc.Text())
		}
		b, err := fs.ReadFile(FS(), "vendor/uplot/"+name)
		if err != nil {
			t.Fatal(err)
		}
		if got := sha256.Sum256(b); hex.EncodeToString(got[:]) != want {
			t.Errorf("vendor/uplot/%s was changed by hand: run serving/dashboard/refresh-uplot.sh", name)
		}
		checked++
	}
	if checked != 4 {
		t.Errorf("SHA256SUMS covers %d files, want 4 (the build, its CSS, LICENSE, VERSION)", checked)
	}
	script, err := os.ReadFile("refresh-uplot.sh")
	if err != nil {
		t.Fatal(err)
	}
	pin := regexp.MustCompile(`UPLOT_VERSION:-([0-9.]+)`).FindSubmatch(script)
	version, _ := fs.ReadFile(FS(), "vendor/uplot/VERSION")
	if pin == nil || strings.TrimSpace(string(version)) != string(pin[1]) {
		t.Errorf("vendored uPlot %q, refresh-uplot.sh pins %q", version, pin)
	}
	if lic, _ := fs.ReadFile(FS(), "vendor/uplot/LICENSE"); !strings.Contains(string(lic), "MIT License") {
		t.Error("the uPlot licence is missing")
	}
}

// TestHas: the page's files are found, directories and escapes are not.
func TestHas(t *testing.T) {
	for path, want := range map[string]bool{
		"/index.html": true, "/app.js": true, "/vendor/uplot/uPlot.min.css": true,
		"/": false, "/vendor": false, "/../dashboard.go": false, "/nope.js": false,
	} {
		if got := Has(path); got != want {
			t.Errorf("Has(%q) = %v, want %v", path, got, want)
		}
	}
}
