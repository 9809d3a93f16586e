package main

import (
	"encoding/json"
	"net/http"
)

// The limits of the HTTP API. A request over one of them is answered with
// a 4xx and a JSON error before anything reaches raft.
const (
	maxKeyBytes   = 1024    // bytes of a key, after unescaping
	maxValueBytes = 1 << 20 // bytes of a value (PUT /kv/{key})
	maxJSONBytes  = 1 << 16 // bytes of a JSON request body
	maxIDBytes    = 128     // bytes of a member's ID
)

// apiError is the body of every error answer.
type apiError struct {
	Error string `json:"error"`
}

// writeError answers code with {"error": msg}.
func writeError(w http.ResponseWriter, code int, msg string) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Del("Content-Length")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(apiError{Error: msg})
}

// writeJSON answers 200 with v encoded as JSON.
func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

// jsonFallback serves requests through mux, but answers those that match
// no route (404) or match a route under another method (405) with a JSON
// error instead of the mux's plain text.
func jsonFallback(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h, pattern := mux.Handler(r)
		if pattern != "" {
			mux.ServeHTTP(w, r)
			return
		}
		rec := &headerRecorder{header: make(http.Header)}
		h.ServeHTTP(rec, r)
		switch rec.code {
		case http.StatusMethodNotAllowed:
			w.Header().Set("Allow", rec.header.Get("Allow"))
			writeError(w, http.StatusMethodNotAllowed, "method not allowed")
		case http.StatusNotFound, 0:
			writeError(w, http.StatusNotFound, "no such route")
		default:
			// A redirect the mux makes to a cleaned path.
			for k, v := range rec.header {
				if k != "Content-Type" && k != "Content-Length" {
					w.Header()[k] = v
				}
			}
			writeError(w, rec.code, http.StatusText(rec.code))
		}
	})
}

// headerRecorder keeps the status and headers a handler writes and drops
// its body.
type headerRecorder struct {
	header http.Header
	code   int
}

func (h *headerRecorder) Header() http.Header { return h.header }

func (h *headerRecorder) Write(b []byte) (int, error) {
	if h.code == 0 {
		h.code = http.StatusOK
	}
	return len(b), nil
}

func (h *headerRecorder) WriteHeader(code int) {
	if h.code == 0 {
		h.code = code
	}
}
