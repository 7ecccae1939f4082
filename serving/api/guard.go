package api

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
)

// Guard refuses requests a web page can make a browser send to a server
// it should not reach.
//
//   - DNS rebinding: a page on evil.example re-points its own name at
//     127.0.0.1 and reads a loopback server as same-origin. The Host header
//     still says evil.example, so a request whose Host is neither a
//     loopback name or address nor one of Hosts gets 421 (Misdirected
//     Request).
//   - Cross-origin reads: a request whose Origin is not the server's own
//     (scheme and Host) and not one of Origins gets 403. An allowed origin
//     gets Access-Control-Allow-Origin, so that its pages may read the
//     answers.
//
// /healthz and /readyz stay open to any Host, for probes that dial an
// address. The zero Guard serves loopback names and same-origin requests
// only.
type Guard struct {
	Hosts   []string // host names or addresses (no port) served besides loopback
	Origins []string // origins (scheme://host[:port]) that may read cross-origin
}

// Wrap returns next behind the guard.
func (g Guard) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		open := r.URL.Path == "/healthz" || r.URL.Path == "/readyz"
		if host := hostOnly(r.Host); !open && !isLoopbackHost(host) && !slices.Contains(g.Hosts, strings.ToLower(host)) {
			refuse(w, http.StatusMisdirectedRequest, fmt.Sprintf("this server does not serve host %s (it serves loopback names%s); give query serve --allow_host",
				quote(host), listed(g.Hosts)))
			return
		}
		if origin := r.Header.Get("Origin"); origin != "" && !open && !sameOrigin(origin, r) {
			if !slices.Contains(g.Origins, origin) {
				refuse(w, http.StatusForbidden, fmt.Sprintf("cross-origin request from %s refused; give query serve --allow_origin", quote(origin)))
				return
			}
			w.Header().Set("Access-Control-Allow-Origin", origin)
			w.Header().Add("Vary", "Origin")
			if r.Method == http.MethodOptions { // a preflight
				w.Header().Set("Access-Control-Allow-Methods", "GET, HEAD")
				w.WriteHeader(http.StatusNoContent)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

func refuse(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(ErrorResponse{Error: msg})
}

func listed(hosts []string) string {
	if len(hosts) == 0 {
		return ""
	}
	return " and " + strings.Join(hosts, ", ")
}

// hostOnly is a Host header without its port, lower-cased.
func hostOnly(hostport string) string {
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		hostport = h
	}
	return strings.ToLower(strings.Trim(hostport, "[]"))
}

func isLoopbackHost(host string) bool {
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// sameOrigin reports whether origin is the server's own, as the request
// reached it.
func sameOrigin(origin string, r *http.Request) bool {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return strings.EqualFold(origin, scheme+"://"+r.Host)
}
