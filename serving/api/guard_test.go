package api

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestGuard: DNS rebinding (a foreign Host reaching a loopback server) is
// refused with 421, cross-origin reads with 403 unless the origin is
// allowed, and loopback, same-origin and probe requests pass.
func TestGuard(t *testing.T) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) })
	g := Guard{Hosts: []string{"lumen.internal"}, Origins: []string{"https://app.example"}}.Wrap(ok)
	for _, c := range []struct {
		name, host, origin, path, method string
		status                           int
		acao                             string
	}{
		{"loopback name", "localhost:8080", "", "/v1/apps", "GET", 200, ""},
		{"loopback v4", "127.0.0.1:8080", "", "/v1/counts", "GET", 200, ""},
		{"loopback v6", "[::1]:8080", "", "/", "GET", 200, ""},
		{"allowed host", "LUMEN.internal", "", "/v1/apps", "GET", 200, ""},
		{"DNS rebinding", "evil.example", "", "/v1/apps", "GET", http.StatusMisdirectedRequest, ""},
		{"rebinding the dashboard", "evil.example:8080", "", "/", "GET", http.StatusMisdirectedRequest, ""},
		{"a probe by address", "10.1.2.3:8080", "", "/healthz", "GET", 200, ""},
		{"same origin", "localhost:8080", "http://localhost:8080", "/v1/apps", "GET", 200, ""},
		{"cross origin", "localhost:8080", "http://evil.example", "/v1/apps", "GET", http.StatusForbidden, ""},
		{"allowed origin", "lumen.internal", "https://app.example", "/v1/apps", "GET", 200, "https://app.example"},
		{"allowed preflight", "lumen.internal", "https://app.example", "/v1/apps", "OPTIONS", http.StatusNoContent, "https://app.example"},
	} {
		r := httptest.NewRequest(c.method, "http://x"+c.path, nil)
		r.Host = c.host
		if c.origin != "" {
			r.Header.Set("Origin", c.origin)
		}
		w := httptest.NewRecorder()
		g.ServeHTTP(w, r)
		if w.Code != c.status || w.Header().Get("Access-Control-Allow-Origin") != c.acao {
			t.Errorf("%s: %d (allow-origin %q), want %d (%q): %s", c.name, w.Code, w.Header().Get("Access-Control-Allow-Origin"), c.status, c.acao, w.Body)
		}
		if c.status >= 400 && (!strings.Contains(w.Body.String(), `"error"`) || strings.Contains(w.Body.String(), "ok")) {
			t.Errorf("%s: a refusal must be a JSON error and must not reach the handler: %s", c.name, w.Body)
		}
	}
}
