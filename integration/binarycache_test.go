package integration

import (
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
)

// binaryCacheServer serves a directory as a writable Nix binary cache
// (GET, HEAD and PUT) on loopback.
func binaryCacheServer(t *testing.T) (string, string) {
	t.Helper()
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	files := http.FileServer(http.Dir(dir))
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut {
			p := filepath.Join(dir, filepath.Clean("/"+r.URL.Path))
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				http.Error(w, err.Error(), 500)
				return
			}
			f, err := os.Create(p)
			if err == nil {
				_, err = io.Copy(f, r.Body)
				f.Close()
			}
			if err != nil {
				http.Error(w, err.Error(), 500)
			}
			return
		}
		files.ServeHTTP(w, r)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String(), dir
}
