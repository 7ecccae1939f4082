// Package dashboard is the web page `query serve` shows at /: plain HTML,
// CSS and one script over the JSON API, with uPlot (pinned, with its
// licence, under static/vendor/uplot; refresh-uplot.sh updates it from
// npm) for the time series. The files are embedded, so building and
// running lumen needs no Node.
//
// It is not for computing anything: every number on the page comes from
// the /v1 endpoints.
package dashboard

import (
	"embed"
	"io/fs"
	"net/http"
	"strings"
)

//go:embed static
var files embed.FS

// static is the embedded tree rooted at static/.
var static = func() fs.FS {
	sub, err := fs.Sub(files, "static")
	if err != nil {
		panic(err) // the embed pattern guarantees the directory
	}
	return sub
}()

// FS returns the dashboard's files (index.html at the root).
func FS() fs.FS { return static }

// Has reports whether path (as in a URL, with a leading slash) names a
// file of the dashboard.
func Has(path string) bool {
	name := strings.TrimPrefix(path, "/")
	if name == "" || !fs.ValidPath(name) {
		return false
	}
	st, err := fs.Stat(static, name)
	return err == nil && !st.IsDir()
}

// Handler serves the dashboard's files.
func Handler() http.Handler {
	fsrv := http.FileServerFS(static)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Content-Security-Policy", "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:")
		fsrv.ServeHTTP(w, r)
	})
}
