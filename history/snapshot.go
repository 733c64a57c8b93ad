package history

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"os"
	"path/filepath"
	"time"

	"github.com/mesp-project/mesp/funcid"
)

// A snapshot is the store's rings in one file, so that pushed history
// survives a restart (the Prometheus reader's can be read again, pushes
// cannot): "MESPHIS1", the window length and the function count (uint32
// each), then per function its id (uint16 length, bytes), newest and first
// (int64) and its counts (length float32), all little-endian, and a CRC-32
// (Castagnoli) of everything before it. Written to a temporary file,
// synced and renamed, so a crash leaves the last whole snapshot.
const snapshotMagic = "MESPHIS1"

// ErrSnapshot marks a snapshot file that cannot be loaded whole.
var ErrSnapshot = errors.New("history: bad snapshot")

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Save writes the store to path atomically.
func (s *Store) Save(path string) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("history: snapshot: %w", err)
	}
	defer os.Remove(tmp.Name()) // after a successful rename, nothing to remove
	crc := crc32.New(castagnoli)
	w := bufio.NewWriterSize(io.MultiWriter(tmp, crc), 1<<20)
	if err := s.writeSnapshot(w); err != nil {
		tmp.Close()
		return fmt.Errorf("history: snapshot: %w", err)
	}
	if err := w.Flush(); err != nil {
		tmp.Close()
		return fmt.Errorf("history: snapshot: %w", err)
	}
	if err := binary.Write(tmp, binary.LittleEndian, crc.Sum32()); err != nil {
		tmp.Close()
		return fmt.Errorf("history: snapshot: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("history: snapshot: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("history: snapshot: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("history: snapshot: %w", err)
	}
	return nil
}

func (s *Store) writeSnapshot(w io.Writer) error {
	s.mu.RLock()
	ids := make([]string, 0, len(s.series))
	rings := make([]*ring, 0, len(s.series))
	for id, r := range s.series {
		ids, rings = append(ids, id), append(rings, r)
	}
	s.mu.RUnlock()
	le := binary.LittleEndian
	head := append([]byte(snapshotMagic), 0, 0, 0, 0, 0, 0, 0, 0)
	le.PutUint32(head[8:], uint32(s.length))
	le.PutUint32(head[12:], uint32(len(ids)))
	if _, err := w.Write(head); err != nil {
		return err
	}
	buf := make([]byte, 0, 2+funcid.MaxLen+16+4*s.length)
	for i, r := range rings {
		buf = le.AppendUint16(buf[:0], uint16(len(ids[i])))
		buf = append(buf, ids[i]...)
		r.mu.Lock()
		buf = le.AppendUint64(buf, uint64(r.newest))
		buf = le.AppendUint64(buf, uint64(r.first))
		for j := range s.length {
			buf = le.AppendUint32(buf, math.Float32bits(r.counts.get(j)))
		}
		r.mu.Unlock()
		if _, err := w.Write(buf); err != nil {
			return err
		}
	}
	return nil
}

// Load adds the functions of the snapshot at path to the store and
// returns how many. A missing file is no error (0). A file that is
// truncated, corrupt, of another window length or holding more
// functions than the store takes is refused whole with ErrSnapshot and
// nothing is added: the caller starts empty and keeps the file aside.
func (s *Store) Load(path string) (int, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("history: snapshot: %w", err)
	}
	series, err := s.parseSnapshot(b)
	if err != nil {
		return 0, fmt.Errorf("%w %s: %v", ErrSnapshot, path, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, r := range series {
		s.series[id] = r
	}
	return len(series), nil
}

func (s *Store) parseSnapshot(b []byte) (map[string]*ring, error) {
	le := binary.LittleEndian
	if len(b) < len(snapshotMagic)+8+4 || string(b[:len(snapshotMagic)]) != snapshotMagic {
		return nil, errors.New("not a MESP history snapshot")
	}
	body, sum := b[:len(b)-4], le.Uint32(b[len(b)-4:])
	if crc32.Checksum(body, castagnoli) != sum {
		return nil, errors.New("checksum mismatch: truncated or corrupt")
	}
	length, n := int(le.Uint32(body[8:])), int(le.Uint32(body[12:]))
	if length != s.length {
		return nil, fmt.Errorf("a window of %d minutes, this store keeps %d", length, s.length)
	}
	if n > s.max {
		return nil, fmt.Errorf("%d functions, history.max_functions is %d", n, s.max)
	}
	out := make(map[string]*ring, n)
	p := body[16:]
	for i := range n {
		if len(p) < 2 {
			return nil, fmt.Errorf("function %d: truncated", i)
		}
		idLen := int(le.Uint16(p))
		need := 2 + idLen + 16 + 4*length
		if len(p) < need {
			return nil, fmt.Errorf("function %d: truncated", i)
		}
		id := string(p[2 : 2+idLen])
		if err := funcid.Validate(id); err != nil {
			return nil, fmt.Errorf("function %d: %w", i, err)
		}
		q := p[2+idLen:]
		r := &ring{newest: int64(le.Uint64(q)), first: int64(le.Uint64(q[8:])), counts: newSlots(length)}
		for j := range length {
			c := math.Float32frombits(le.Uint32(q[16+4*j:]))
			if v := float64(c); math.IsNaN(v) || v < 0 || v > math.MaxFloat32 {
				return nil, fmt.Errorf("function %s: count %v", funcid.Short(id), v)
			}
			r.counts.set(j, c)
		}
		out[id] = r
		p = p[need:]
	}
	if len(p) != 0 {
		return nil, fmt.Errorf("%d bytes after the last function", len(p))
	}
	return out, nil
}

// Persist saves the store to path every interval and once more when ctx
// ends (a clean stop loses nothing; a crash, at most one interval), then
// closes done. Failures go to onError; the next save tries again.
func (s *Store) Persist(ctx context.Context, path string, every time.Duration, onError func(error), done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			if err := s.Save(path); err != nil && onError != nil {
				onError(err)
			}
			return
		case <-t.C:
			if err := s.Save(path); err != nil && onError != nil {
				onError(err)
			}
		}
	}
}
