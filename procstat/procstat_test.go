package procstat

import "testing"

func TestReadsThisProcess(t *testing.T) {
	before := CPUSeconds()
	buf := make([]byte, 64<<20)
	for i := range buf {
		buf[i] = byte(i)
	}
	x := 0
	for i := range 50_000_000 {
		x += i % 7
	}
	if after := CPUSeconds(); !(after > before) || x == 0 {
		t.Fatalf("CPU seconds %v -> %v after a busy loop", before, after)
	}
	if rss := PeakRSSMiB(); rss < 64 || buf[1000] != byte(1000%256) {
		t.Fatalf("peak RSS %v MiB after touching 64 MiB", rss)
	}
}
