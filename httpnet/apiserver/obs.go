package apiserver

import (
	"embed"
	"io/fs"
	"net/http"
	"strings"

	"github.com/dtc-project/dtc/api"
)

// The operator's endpoints: GET /v1/stats (stats.go), GET /v1/openapi.json (the API's
// description, package api) and the admin page under /ui/ (files embedded from ui/,
// no build step, nothing fetched from elsewhere: it works with no network).

//go:embed ui
var uiFiles embed.FS

// uiFS is ui/ as the root the page's files are served from.
var uiFS = func() http.FileSystem {
	sub, err := fs.Sub(uiFiles, "ui")
	if err != nil {
		panic("httpnet: embedded ui: " + err.Error())
	}
	return http.FS(sub)
}()

// routeObs answers the operator's endpoints; ok is false for any other path. route is
// the label of dtc_http_requests_total.
func (s *Server) routeObs(w http.ResponseWriter, r *http.Request) (route string, ok bool) {
	path := r.URL.Path
	switch {
	case path == "/v1/stats", path == "/v1/openapi.json":
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			s.methodNotAllowed(w, r, "GET, HEAD")
			return path, true
		}
		if len(r.URL.RawQuery) > 0 {
			s.fail(w, http.StatusBadRequest, CodeInvalid, path+" takes no query parameters")
			return path, true
		}
		if path == "/v1/stats" {
			// Counts only, no transaction: any client may read them (not anonymous).
			if _, ok := s.authorize(w, r, "read the stats", RoleSubmit, RoleRead, RoleAdmin); ok {
				writeJSON(w, http.StatusOK, s.rt.StatsResponse(r.Context()))
			}
		} else {
			writeBody(w, http.StatusOK, api.OpenAPIJSON)
		}
		return path, true
	case path == "/ui":
		http.Redirect(w, r, "/ui/", http.StatusMovedPermanently)
		return "/ui/", true
	case strings.HasPrefix(path, "/ui/"):
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			s.methodNotAllowed(w, r, "GET, HEAD")
			return "/ui/", true
		}
		name := strings.TrimPrefix(path, "/ui/")
		if name == "" {
			name = "index.html"
		}
		f, err := uiFS.Open(name)
		if err != nil {
			s.fail(w, http.StatusNotFound, CodeNoRoute, "no route "+path+": the admin page is at /ui/")
			return "/ui/", true
		}
		defer f.Close()
		st, err := f.Stat()
		if err != nil || st.IsDir() {
			s.fail(w, http.StatusNotFound, CodeNoRoute, "no route "+path+": the admin page is at /ui/")
			return "/ui/", true
		}
		h := w.Header()
		h.Set("Cache-Control", "no-cache")
		h.Set("X-Content-Type-Options", "nosniff")
		// Everything the page uses comes from here; nothing may come from elsewhere.
		h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'")
		http.ServeContent(w, r, st.Name(), st.ModTime(), f.(readSeeker))
		return "/ui/", true
	}
	return "", false
}

type readSeeker interface {
	Read([]byte) (int, error)
	Seek(int64, int) (int64, error)
}
