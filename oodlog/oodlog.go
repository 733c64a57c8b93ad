// Package oodlog records out-of-distribution patterns (farther from their
// nearest centroid than that cluster's threshold) durably, so that `mesp cluster add`
// can later grow new clusters from them.
//
// Format: JSON Lines, one record per line followed by a tab and the CRC-32
// (IEEE, hex) of the JSON. Each record is one write(2) under an exclusive
// flock, with O_APPEND, so writers in many goroutines and processes never
// interleave; a crash mid-write leaves at most one torn last line, which
// the reader detects (no newline, or a CRC mismatch) and skips. When the
// current file reaches MaxBytes it is rotated to ood.jsonl.1 (older files
// shift up) and files beyond Keep are deleted, bounding the disk used.
package oodlog

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// Record is one out-of-distribution pattern.
type Record struct {
	Function string    `json:"function"`
	Time     time.Time `json:"time"`
	Cluster  int       `json:"nearest_cluster"`
	Distance float64   `json:"distance"`
	Counts   []float64 `json:"counts"`
	// Source is the client address the pattern came from (the connection's,
	// not a forwarded header): cluster add can learn from trusted sources only.
	Source string `json:"source,omitempty"`
}

// Name is the current log file in a folder.
const Name = "ood.jsonl"

// Log appends records to a folder.
type Log struct {
	dir      string
	maxBytes int64
	keep     int
	mu       sync.Mutex
}

// Open prepares dir (creating it) for appending.
func Open(dir string, maxBytes int64, keep int) (*Log, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("oodlog: %w", err)
	}
	if maxBytes <= 0 || keep < 1 {
		return nil, fmt.Errorf("oodlog: max bytes %d and keep %d must be positive", maxBytes, keep)
	}
	return &Log{dir: dir, maxBytes: maxBytes, keep: keep}, nil
}

// Encode renders one record as its line.
func Encode(r Record) ([]byte, error) {
	js, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("oodlog: %w", err)
	}
	line := make([]byte, 0, len(js)+10)
	line = append(line, js...)
	line = append(line, '\t')
	line = strconv.AppendUint(line, uint64(crc32.ChecksumIEEE(js)), 16)
	return append(line, '\n'), nil
}

// Append writes one record.
func (l *Log) Append(r Record) error {
	line, err := Encode(r)
	if err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	lock, err := os.OpenFile(filepath.Join(l.dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return fmt.Errorf("oodlog: %w", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("oodlog: lock: %w", err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	path := filepath.Join(l.dir, Name)
	if st, err := os.Stat(path); err == nil && st.Size()+int64(len(line)) > l.maxBytes && st.Size() > 0 {
		if err := l.rotate(); err != nil {
			return err
		}
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("oodlog: %w", err)
	}
	// A crash may have left a torn last line: end it first, so that it
	// does not swallow this record.
	if st, err := f.Stat(); err == nil && st.Size() > 0 {
		last := make([]byte, 1)
		if _, err := f.ReadAt(last, st.Size()-1); err == nil && last[0] != '\n' {
			line = append([]byte{'\n'}, line...)
		}
	}
	if _, err := f.Write(line); err != nil {
		f.Close()
		return fmt.Errorf("oodlog: %w", err)
	}
	return f.Close()
}

// rotate shifts ood.jsonl -> .1 -> .2 ... and drops files beyond keep
// (counting the current file). Called with the lock held.
func (l *Log) rotate() error {
	base := filepath.Join(l.dir, Name)
	os.Remove(base + "." + strconv.Itoa(l.keep-1))
	for i := l.keep - 2; i >= 1; i-- {
		old := base + "." + strconv.Itoa(i)
		if _, err := os.Stat(old); err == nil {
			if err := os.Rename(old, base+"."+strconv.Itoa(i+1)); err != nil {
				return fmt.Errorf("oodlog: rotate: %w", err)
			}
		}
	}
	if l.keep == 1 {
		return os.Remove(base)
	}
	if err := os.Rename(base, base+".1"); err != nil {
		return fmt.Errorf("oodlog: rotate: %w", err)
	}
	return nil
}

// ReadStats says what a read skipped.
type ReadStats struct {
	Records int
	Torn    int // lines without a newline or with a bad checksum
}

// ReadDir reads every intact record of a folder, oldest file first.
func ReadDir(dir string) ([]Record, ReadStats, error) {
	base := filepath.Join(dir, Name)
	var files []string
	for i := 64; i >= 1; i-- {
		if _, err := os.Stat(base + "." + strconv.Itoa(i)); err == nil {
			files = append(files, base+"."+strconv.Itoa(i))
		}
	}
	if _, err := os.Stat(base); err == nil {
		files = append(files, base)
	}
	var out []Record
	var st ReadStats
	for _, p := range files {
		recs, s, err := ReadFile(p)
		if err != nil {
			return nil, st, err
		}
		out = append(out, recs...)
		st.Records += s.Records
		st.Torn += s.Torn
	}
	return out, st, nil
}

// ErrNotOODLog marks a file that is not an OOD log at all.
var ErrNotOODLog = errors.New("oodlog: not an OOD log")

// ReadFile reads one log file, skipping torn lines.
func ReadFile(path string) ([]Record, ReadStats, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, ReadStats{}, fmt.Errorf("oodlog: %w", err)
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 1<<16)
	var out []Record
	var st ReadStats
	for {
		line, err := br.ReadBytes('\n')
		if err == io.EOF {
			if len(line) > 0 {
				st.Torn++ // a write cut short by a crash
			}
			return out, st, nil
		}
		if err != nil {
			return nil, st, fmt.Errorf("oodlog: %s: %w", path, err)
		}
		js, sum, ok := bytes.Cut(bytes.TrimSuffix(line, []byte("\n")), []byte("\t"))
		want, perr := strconv.ParseUint(string(sum), 16, 32)
		var r Record
		if !ok || perr != nil || uint32(want) != crc32.ChecksumIEEE(js) || json.Unmarshal(js, &r) != nil {
			st.Torn++
			continue
		}
		out = append(out, r)
		st.Records++
	}
}
