package api_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/lumenhq/lumen/serving"
	"github.com/lumenhq/lumen/serving/api"
)

// keysJSON is a keys file of the given id/secret/apps triples.
func keysJSON(keys ...[3]string) string {
	var entries []string
	for _, k := range keys {
		h := sha256.Sum256([]byte(k[1]))
		var apps []string
		for _, a := range strings.Split(k[2], ",") {
			apps = append(apps, fmt.Sprintf("%q", a))
		}
		entries = append(entries, fmt.Sprintf(`{"id":%q,"secret_sha256":%q,"apps":[%s]}`, k[0], hex.EncodeToString(h[:]), strings.Join(apps, ",")))
	}
	return `{"keys":[` + strings.Join(entries, ",") + `]}`
}

func mustKeys(t testing.TB, js string) *api.Keys {
	t.Helper()
	ks, err := api.ParseKeys(strings.NewReader(js))
	if err != nil {
		t.Fatal(err)
	}
	return ks
}

// Tenants of the seed: key A reads notes (exactly) and every app starting
// "com.acme.c" (chat); key B reads maps.
const (
	secretA = "lk_secret-of-tenant-a"
	secretB = "lk_secret-of-tenant-b"
)

var tenantKeys = keysJSON([3]string{"a", secretA, "com.acme.notes,com.acme.c*"}, [3]string{"b", secretB, "com.acme.maps"})

// authServer serves st behind the guard and the keys, as query serve
// --keys does.
func authServer(t testing.TB, st serving.Store, keys *api.Keys, limits api.KeyLimits, store serving.Store) *httptest.Server {
	t.Helper()
	if store == nil {
		store = st
	}
	svc := api.NewService(&serving.Querier{Store: serving.WithTimeout(store, 5*time.Second)})
	h := api.NewHandler(svc, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	srv := httptest.NewServer(api.Guard{}.Wrap(api.NewAuth(keys, limits).Wrap(h)))
	t.Cleanup(srv.Close)
	return srv
}

// fetch GETs url with the bearer secret (none if empty).
func fetch(t testing.TB, url, secret string) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if secret != "" {
		req.Header.Set("Authorization", "Bearer "+secret)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, res.Header, body
}

// TestTenantIsolation: for every endpoint and parameter combination, key A
// gets exactly what an open server answers for its own apps, and for any
// other app, existing or not, one and the same 403 that names nothing.
// No answer to A carries B's app name.
func TestTenantIsolation(t *testing.T) { eachStore(t, testTenantIsolation) }

func testTenantIsolation(t *testing.T, st serving.Store) {
	sd := newSeed(time.Now(), 0)
	open := newServer(t, st, sd) // writes the seed
	srv := authServer(t, st, mustKeys(t, tenantKeys), api.KeyLimits{MaxInFlight: 64}, nil)

	// /v1/apps lists A's apps only.
	code, _, body := fetch(t, srv.URL+"/v1/apps", secretA)
	if code != 200 || !strings.Contains(string(body), `"com.acme.notes"`) || !strings.Contains(string(body), `"com.acme.chat"`) || strings.Contains(string(body), "maps") {
		t.Errorf("/v1/apps as A: %d %s, want notes and chat only", code, body)
	}
	if code, _, body := fetch(t, srv.URL+"/v1/apps", secretB); code != 200 || strings.Contains(string(body), "notes") || !strings.Contains(string(body), "com.acme.maps") {
		t.Errorf("/v1/apps as B: %d %s, want maps only", code, body)
	}

	own := []string{"com.acme.notes", "com.acme.chat"}
	ownUnknown := "com.acme.cx"                                                                 // in A's scope, no rows
	others := []string{"com.acme.maps", "com.acme.zzz", "com.acme.map", "com.acme.notes.x", ""} // outside A's scope
	day, from := sd.today.Format(time.DateOnly), sd.today.AddDate(0, 0, -8).Format(time.DateOnly)
	var paths []string
	for _, kind := range []string{"app_load", "crash", "handled_exception", "bogus"} {
		for _, version := range []string{"", "3.3.0", "9.9.9"} {
			for _, g := range []string{"minute", "hour", "day"} {
				f := from
				if g == "minute" {
					f = day
				}
				paths = append(paths, "/v1/counts"+q("kind", kind, "version", version, "granularity", g, "from", f, "to", day))
				paths = append(paths, "/v1/late"+q("kind", kind, "version", version, "granularity", g, "from", f, "to", day))
			}
			paths = append(paths, "/v1/users"+q("kind", kind, "version", version, "from", from, "to", day))
			paths = append(paths, "/v1/active"+q("kind", kind, "version", version, "date", day))
		}
	}
	for _, version := range []string{"", "3.3.0", "9.9.9"} {
		paths = append(paths, "/v1/crash-free"+q("version", version, "from", from, "to", day))
	}
	var forbidden []byte
	requests := 0
	for _, p := range paths {
		for _, app := range append(append(append([]string{}, own...), ownUnknown), others...) {
			path := p + "&app=" + app
			requests++
			code, _, body := fetch(t, srv.URL+path, secretA)
			if strings.Contains(string(body), "maps") {
				t.Errorf("GET %s as A: the answer names B's app: %s", path, body)
			}
			switch {
			case app == ownUnknown:
				if code != 404 && code != 400 {
					t.Errorf("GET %s as A: %d, want 404 (or 400 for a bad kind)", path, code)
				}
			case app == own[0] || app == own[1]:
				wantCode, _, want := fetch(t, open.URL+path, "")
				if code != wantCode || !bytes.Equal(body, want) {
					t.Errorf("GET %s as A: %d %s, want what an open server answers: %d %s", path, code, body, wantCode, want)
				}
			default:
				if code != 403 {
					t.Errorf("GET %s as A: %d %s, want 403", path, code, body)
				}
				if forbidden == nil {
					forbidden = body
				} else if !bytes.Equal(body, forbidden) {
					t.Errorf("GET %s as A: a 403 that differs from another: %s, not %s", path, body, forbidden)
				}
			}
		}
	}
	t.Logf("%d requests as key A; every 403 is %s", requests, bytes.TrimSpace(forbidden))
}

// TestAuthRefuses: a request without a key, with another scheme, with an
// unknown or an empty secret gets 401; health checks and the dashboard
// stay open; /metrics is open on loopback and needs a metrics key beyond.
func TestAuthRefuses(t *testing.T) {
	st := openSQLite(t)
	keys := mustKeys(t, `{"keys":[`+strings.TrimSuffix(strings.TrimPrefix(tenantKeys, `{"keys":[`), `]}`)+
		`,{"id":"ops","secret_sha256":"`+sha256hex("lk_ops")+`","apps":["*"],"metrics":true}]}`)
	srv := authServer(t, st, keys, api.DefaultKeyLimits, nil)
	for _, c := range []struct {
		name, header string
		want         int
	}{
		{"no header", "", 401},
		{"basic", "Basic " + secretA, 401},
		{"unknown", "Bearer lk_nobody", 401},
		{"empty", "Bearer ", 401},
		{"a prefix of a secret", "Bearer " + secretA[:len(secretA)-1], 401},
		{"lower-case scheme", "bearer " + secretA, 200},
		{"right", "Bearer " + secretA, 200},
	} {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/v1/apps", nil)
		if c.header != "" {
			req.Header.Set("Authorization", c.header)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != c.want {
			t.Errorf("%s: %d, want %d", c.name, res.StatusCode, c.want)
		}
		if c.want == 401 && !strings.HasPrefix(res.Header.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("%s: 401 without WWW-Authenticate: Bearer", c.name)
		}
	}
	for _, p := range []string{"/healthz", "/readyz", "/", "/app.js"} {
		if code, _, body := fetch(t, srv.URL+p, ""); code != 200 {
			t.Errorf("GET %s without a key: %d %s, want 200", p, code, body)
		}
	}
	if code, _, _ := fetch(t, srv.URL+"/metrics", ""); code != 200 {
		t.Errorf("/metrics from loopback: %d, want 200", code)
	}
	// From beyond loopback: the handler is called with a remote address.
	h := srv.Config.Handler
	for _, c := range []struct {
		secret string
		want   int
	}{{"", 401}, {secretA, 403}, {"lk_ops", 200}} {
		req := httptest.NewRequest(http.MethodGet, "http://localhost/metrics", nil)
		req.RemoteAddr = "203.0.113.9:4242"
		if c.secret != "" {
			req.Header.Set("Authorization", "Bearer "+c.secret)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != c.want {
			t.Errorf("/metrics from 203.0.113.9 with %q: %d, want %d", c.secret, rec.Code, c.want)
		}
	}
}

func sha256hex(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// TestKeyLimits: a key over its rate gets 429 with Retry-After while
// another key is served; a key with its requests in flight at the bound
// gets 429; a reload drops a removed key and admits a new one.
func TestKeyLimits(t *testing.T) {
	sd := newSeed(time.Now(), 0)
	st := openSQLite(t)
	sd.write(t, st)
	bs := &blockingStore{Store: st, entered: make(chan struct{}, 16)}
	keys := mustKeys(t, tenantKeys)
	svc := api.NewService(&serving.Querier{Store: bs})
	auth := api.NewAuth(keys, api.KeyLimits{Rate: 1e-3, Burst: 3, MaxInFlight: 1})
	srv := httptest.NewServer(auth.Wrap(api.NewHandler(svc, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)))
	defer srv.Close()
	day := sd.today.Format(time.DateOnly)
	notes := srv.URL + "/v1/counts" + q("app", "com.acme.notes", "from", day, "to", day)
	maps := srv.URL + "/v1/counts" + q("app", "com.acme.maps", "from", day, "to", day)
	codes := []int{}
	var retry string
	for range 5 {
		code, hdr, _ := fetch(t, notes, secretA)
		codes = append(codes, code)
		if code == 429 {
			retry = hdr.Get("Retry-After")
		}
	}
	// A burst of 3, refilled once in 1,000 s: the 4th and 5th are refused.
	if fmt.Sprint(codes[:3]) != "[200 200 200]" || codes[4] != 429 || retry == "" {
		t.Errorf("key A at its rate: %v (Retry-After %q), want 3×200 then 429 with Retry-After", codes, retry)
	}
	if code, _, body := fetch(t, maps, secretB); code != 200 {
		t.Errorf("key B while A is over its rate: %d %s", code, body)
	}

	// In flight: B's one slot held inside the store.
	bs.mu.Lock()
	bs.block = make(chan struct{})
	bs.mu.Unlock()
	held := make(chan int, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodGet, maps, nil)
		req.Header.Set("Authorization", "Bearer "+secretB)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			held <- -1
			return
		}
		res.Body.Close()
		held <- res.StatusCode
	}()
	<-bs.entered
	if code, hdr, body := fetch(t, maps, secretB); code != 429 || hdr.Get("Retry-After") == "" || !strings.Contains(string(body), "in flight") {
		t.Errorf("key B beyond its requests in flight: %d %s, want 429 with Retry-After", code, body)
	}
	bs.mu.Lock()
	close(bs.block)
	bs.block = nil
	bs.mu.Unlock()
	if code := <-held; code != 200 {
		t.Errorf("the held request: %d", code)
	}

	// Reload: B removed, C added.
	auth.Load(mustKeys(t, keysJSON([3]string{"c", "lk_c", "com.acme.maps"})))
	if code, _, _ := fetch(t, maps, secretB); code != 401 {
		t.Errorf("a removed key after the reload: %d, want 401", code)
	}
	if code, _, body := fetch(t, maps, "lk_c"); code != 200 {
		t.Errorf("a new key after the reload: %d %s", code, body)
	}
}

func TestParseKeys(t *testing.T) {
	good := sha256hex("x")
	for _, c := range []struct{ name, file, err string }{
		{"not JSON", `keys: []`, "not a keys file"},
		{"unknown field", `{"keys":[{"id":"a","secret_sha256":"` + good + `","apps":["x"],"admin":true}]}`, "unknown field"},
		{"bad id", `{"keys":[{"id":"a b","secret_sha256":"` + good + `","apps":["x"]}]}`, "id"},
		{"twice", `{"keys":[{"id":"a","secret_sha256":"` + good + `","apps":["x"]},{"id":"a","secret_sha256":"` + sha256hex("y") + `","apps":["x"]}]}`, "twice"},
		{"same secret", `{"keys":[{"id":"a","secret_sha256":"` + good + `","apps":["x"]},{"id":"b","secret_sha256":"` + good + `","apps":["x"]}]}`, "same secret"},
		{"short hash", `{"keys":[{"id":"a","secret_sha256":"abcd","apps":["x"]}]}`, "64 hex digits"},
		{"no apps", `{"keys":[{"id":"a","secret_sha256":"` + good + `","apps":[]}]}`, "apps: empty"},
		{"inner star", `{"keys":[{"id":"a","secret_sha256":"` + good + `","apps":["com.*.x"]}]}`, "only at the end"},
		{"empty app", `{"keys":[{"id":"a","secret_sha256":"` + good + `","apps":[""]}]}`, "app id of"},
		{"negative rate", `{"keys":[{"id":"a","secret_sha256":"` + good + `","apps":["x"],"rate":-1}]}`, "negative"},
		{"trailing", `{"keys":[]} {}`, "after the keys"},
	} {
		if _, err := api.ParseKeys(strings.NewReader(c.file)); err == nil || !strings.Contains(err.Error(), c.err) {
			t.Errorf("%s: %v, want an error saying %q", c.name, err, c.err)
		}
	}
	ks := mustKeys(t, keysJSON([3]string{"a", "s", "com.a.x,com.b.*"}, [3]string{"all", "t", "*"}))
	a := ks.Lookup("s")
	if a == nil || a.ID != "a" || ks.Lookup("s ") != nil || ks.Lookup("") != nil {
		t.Fatalf("Lookup: %v", a)
	}
	for app, want := range map[string]bool{"com.a.x": true, "com.a.xy": false, "com.b.": true, "com.b.z": true, "com.c": false} {
		if a.Allows(app) != want {
			t.Errorf("a.Allows(%q) = %v", app, !want)
		}
	}
	if !ks.Lookup("t").Allows("anything") {
		t.Error(`"*" does not allow every app`)
	}
	secret, entry, err := api.NewSecret("new-key", []string{"com.n.*"})
	if err != nil || len(secret) < 64 || entry.SecretSHA256 != sha256hex(secret) {
		t.Fatalf("NewSecret: %q %+v %v", secret, entry, err)
	}
}

// FuzzParseKeys: any bytes give keys or an error, never a panic, and a
// parsed key never allows an app its patterns do not name.
func FuzzParseKeys(f *testing.F) {
	f.Add([]byte(tenantKeys))
	f.Add([]byte(`{"keys":[{"id":"ops","secret_sha256":"` + sha256hex("x") + `","apps":["*"],"metrics":true,"rate":1e308,"burst":1,"max_in_flight":2}]}`))
	f.Add([]byte(`{"keys":null}`))
	f.Add([]byte(`{"keys":[{"id":"a","apps":["\u0000*"]}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		ks, err := api.ParseKeys(bytes.NewReader(b))
		if err != nil {
			return
		}
		if k := ks.Lookup(""); k != nil {
			// Only a file that lists the empty secret's hash can match it.
			if h := sha256hex(""); !bytes.Contains(bytes.ToLower(b), []byte(h)) {
				t.Errorf("the empty secret matches key %q of %q", k.ID, b)
			}
		}
	})
}

// FuzzAuthorization: whatever the Authorization header, the server answers
// (never panics), and only the exact secrets of the keys get past 401.
func FuzzAuthorization(f *testing.F) {
	st := openSQLite(f)
	keys := mustKeys(f, tenantKeys)
	svc := api.NewService(&serving.Querier{Store: st})
	h := api.NewAuth(keys, api.KeyLimits{Rate: 1e9, Burst: 1e9, MaxInFlight: 1e9}).Wrap(api.NewHandler(svc, slog.New(slog.NewTextHandler(io.Discard, nil)), nil))
	for _, s := range []string{"Bearer " + secretA, "Bearer  " + secretB + " ", "bearer", "Bearer", "Basic YTpi", "Bearer \x00", "Bearer " + strings.Repeat("x", 5000)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, header string) {
		req := httptest.NewRequest(http.MethodGet, "http://localhost/v1/apps", nil)
		req.Header["Authorization"] = []string{header}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		token := strings.TrimSpace(header[min(len(header), len("bearer ")):])
		valid := len(header) > len("bearer ") && strings.EqualFold(header[:len("bearer ")], "bearer ") && (token == secretA || token == secretB)
		if valid != (rec.Code == 200) {
			t.Errorf("Authorization %q: %d", header, rec.Code)
		}
		if !valid && rec.Code != 401 {
			t.Errorf("Authorization %q: %d, want 401", header, rec.Code)
		}
	})
}

// Reloads while requests run: a key in every version of the file is
// served throughout (run with -race to check the reload's writes).
func TestKeysReloadUnderLoad(t *testing.T) {
	sd := newSeed(time.Now(), 0)
	st := openSQLite(t)
	sd.write(t, st)
	auth := api.NewAuth(mustKeys(t, tenantKeys), api.KeyLimits{Rate: 1e6, Burst: 1e6, MaxInFlight: 1000})
	srv := httptest.NewServer(auth.Wrap(api.NewHandler(api.NewService(&serving.Querier{Store: st}), slog.New(slog.NewTextHandler(io.Discard, nil)), nil)))
	defer srv.Close()
	var versions []*api.Keys // key A's max_in_flight changes each time
	for i := range 50 {
		versions = append(versions, mustKeys(t, strings.Replace(tenantKeys, `]}`, fmt.Sprintf(`],"max_in_flight":%d}`, 500+i), 1)))
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for _, ks := range versions {
			auth.Load(ks)
		}
	}()
	codes := make(chan int, 200)
	for range 200 {
		go func() {
			req, _ := http.NewRequest(http.MethodGet, srv.URL+"/v1/apps", nil)
			req.Header.Set("Authorization", "Bearer "+secretA)
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				codes <- -1
				return
			}
			res.Body.Close()
			codes <- res.StatusCode
		}()
	}
	for range 200 {
		if c := <-codes; c != 200 {
			t.Errorf("during reloads: %d", c)
		}
	}
	<-done
}
