// Package publish puts a complete set of files in place at once. The set is
// written into a new folder beside its destination, made durable (every
// file and the folder fsync'ed), and swapped in with one rename: a reader
// (the server, training) sees the old set or the new one, never a mix, and
// a process killed half-way leaves the old set as it was and a hidden
// staging folder that the next run ignores.
package publish

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// Stage creates an empty, hidden folder beside dst for the new set.
func Stage(dst string) (string, error) {
	parent, base := filepath.Split(filepath.Clean(dst))
	if parent == "" {
		parent = "."
	}
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return "", fmt.Errorf("publish: %w", err)
	}
	dir, err := os.MkdirTemp(parent, "."+base+".new-")
	if err != nil {
		return "", fmt.Errorf("publish: %w", err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		os.RemoveAll(dir)
		return "", fmt.Errorf("publish: %w", err)
	}
	return dir, nil
}

// Commit makes the staged folder the content of dst in one step and
// removes the set it replaces. With an existing dst the two are exchanged
// atomically (renameat2 RENAME_EXCHANGE); a new dst is a plain rename.
func Commit(staged, dst string) error {
	if err := Sync(staged); err != nil {
		return err
	}
	dst = filepath.Clean(dst)
	if _, err := os.Lstat(dst); errors.Is(err, os.ErrNotExist) {
		if err := os.Rename(staged, dst); err != nil {
			return fmt.Errorf("publish: %w", err)
		}
		return syncDir(filepath.Dir(dst))
	}
	if err := unix.Renameat2(unix.AT_FDCWD, staged, unix.AT_FDCWD, dst, unix.RENAME_EXCHANGE); err != nil {
		return fmt.Errorf("publish: swapping %s into %s: %w", staged, dst, err)
	}
	if err := syncDir(filepath.Dir(dst)); err != nil {
		return err
	}
	// staged now names the old set.
	return os.RemoveAll(staged)
}

// Abort drops a staged folder.
func Abort(staged string) { os.RemoveAll(staged) }

// Sync fsyncs every regular file in dir, then dir itself.
func Sync(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		f, err := os.Open(filepath.Join(dir, e.Name()))
		if err != nil {
			return fmt.Errorf("publish: %w", err)
		}
		err = f.Sync()
		f.Close()
		if err != nil {
			return fmt.Errorf("publish: fsync %s: %w", e.Name(), err)
		}
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("publish: fsync %s: %w", dir, err)
	}
	return nil
}

// CopyFiles copies the regular, non-hidden files of src into dst (a set's
// files; work folders such as .work stay behind).
func CopyFiles(src, dst string) error {
	entries, err := os.ReadDir(src)
	if err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			continue
		}
		info, err := os.Stat(filepath.Join(src, e.Name())) // links followed
		if err != nil || !info.Mode().IsRegular() {
			continue
		}
		if err := copyFile(filepath.Join(src, e.Name()), filepath.Join(dst, e.Name())); err != nil {
			return err
		}
	}
	return nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("publish: %s: %w", dst, err)
	}
	return out.Close()
}
