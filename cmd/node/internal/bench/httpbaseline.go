package bench

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/skynode/skynode/proto"
)

// maxHTTPBody bounds a request body of the HTTP baseline, as net/web's
// default does for the node's API.
const maxHTTPBody = 64 << 10

// ServeHTTPBaseline serves, on ln until ctx ends, the minimal net/http
// counterpart of a node's POST /api/echo (proto/PROTOCOL.md §9): it
// decodes the JSON body with the project's codec and answers
// {"status":"ok","echo":text} encoded the same way, the codec work an
// agent does per request, with none of the gate → agent path. It is the
// baseline that BENCHMARKS.md compares the node's HTTP API with (wrk,
// test/bench_http.sh).
func ServeHTTPBaseline(ctx context.Context, ln net.Listener) error {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/echo", serveHTTPEcho)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 60 * time.Second}
	stop := context.AfterFunc(ctx, func() {
		sctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	})
	defer stop()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func serveHTTPEcho(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxHTTPBody))
	if err != nil {
		http.Error(w, "bad body", http.StatusRequestEntityTooLarge)
		return
	}
	codec := proto.JSON()
	var data map[string]any
	if len(body) > 0 {
		if err := codec.Unmarshal(body, &data); err != nil {
			http.Error(w, "the body must be a JSON object", http.StatusBadRequest)
			return
		}
	}
	text, _ := proto.String(data["text"])
	out, err := codec.Marshal(map[string]any{"status": "ok", "echo": text})
	if err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(out)))
	w.Write(out)
}
