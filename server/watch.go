package server

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Watch reloads when the models folder changes, in any of the ways a
// deployment changes it:
//
//   - files written in place (a new ONNX file, a new manifest.json): fsnotify
//     events, debounced so that several files trigger one reload once the
//     folder has been quiet for `quiet`;
//   - the folder itself a symbolic link switched to another set (and the
//     old target deleted): the watch follows the new target;
//   - a Kubernetes ConfigMap or Secret volume, whose files are links through
//     a "..data" link that the kubelet swaps.
//
// The last two are seen by comparing, every poll interval, where the
// folder and its manifest resolve to (and the manifest's size and time):
// inotify reports neither a link switch above the watched folder nor
// events of a deleted target.
func (s *Server) Watch(ctx context.Context, dir string, quiet time.Duration) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("server: watch: %w", err)
	}
	if err := w.Add(dir); err != nil {
		w.Close()
		return fmt.Errorf("server: watch %s: %w", dir, err)
	}
	poll := time.NewTicker(max(2*quiet, 200*time.Millisecond))
	go func() {
		defer w.Close()
		defer poll.Stop()
		seen := generation(dir)
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
				// Temp files of atomic writes and hidden work folders are not
				// models; a ConfigMap's ..data link is.
				if (strings.HasPrefix(name, ".") && name != "..data") || strings.HasSuffix(name, ".tmp") {
					continue
				}
				if ev.Op&(fsnotify.Write|fsnotify.Create|fsnotify.Rename|fsnotify.Remove) != 0 {
					timer = time.After(quiet)
				}
			case <-poll.C:
				if g := generation(dir); g != seen {
					seen = g
					// Watch the folder the path now leads to.
					for _, old := range w.WatchList() {
						w.Remove(old)
					}
					if err := w.Add(dir); err != nil {
						s.log.Error("watching models folder", "dir", dir, "err", err)
					}
					timer = time.After(quiet)
				}
			case err, ok := <-w.Errors:
				if !ok {
					return
				}
				s.log.Error("watching models folder", "err", err)
			case <-timer:
				timer = nil
				seen = generation(dir)
				s.Reload("watch")
			}
		}
	}()
	return nil
}

// generation names the model set a folder path leads to now: where the
// folder and its manifest resolve to, and the manifest's size and time.
func generation(dir string) string {
	real, _ := filepath.EvalSymlinks(dir)
	manifest := filepath.Join(dir, "manifest.json")
	realManifest, _ := filepath.EvalSymlinks(manifest)
	st, err := os.Stat(manifest)
	if err != nil {
		return real + "|" + realManifest + "|missing"
	}
	return fmt.Sprintf("%s|%s|%d|%d", real, realManifest, st.Size(), st.ModTime().UnixNano())
}
