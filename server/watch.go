package server

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Watch reloads when the models folder changes (a new ONNX file, a new
// manifest). Events are debounced: writing several files triggers one
// reload once the folder has been quiet for `quiet`.
func (s *Server) Watch(ctx context.Context, dir string, quiet time.Duration) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("server: watch: %w", err)
	}
	if err := w.Add(dir); err != nil {
		w.Close()
		return fmt.Errorf("server: watch %s: %w", dir, err)
	}
	go func() {
		defer w.Close()
		var timer <-chan time.Time
		for {
			select {
			case <-ctx.Done():
				return
			case ev, ok := <-w.Events:
				if !ok {
					return
				}
				name := filepath.Base(ev.Name)
				// Temp files of atomic writes and hidden work folders are not models.
				if strings.HasPrefix(name, ".") || strings.HasSuffix(name, ".tmp") {
					continue
				}
				if ev.Op&(fsnotify.Write|fsnotify.Create|fsnotify.Rename|fsnotify.Remove) != 0 {
					timer = time.After(quiet)
				}
			case err, ok := <-w.Errors:
				if !ok {
					return
				}
				s.log.Error("watching models folder", "err", err)
			case <-timer:
				timer = nil
				s.Reload("watch")
			}
		}
	}()
	return nil
}
