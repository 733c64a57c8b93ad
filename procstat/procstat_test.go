package procstat

import (
	"runtime"
	"runtime/debug"
	"testing"
)

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

func TestResetPeakRSSForgetsAnEarlierPeak(t *testing.T) {
	buf := make([]byte, 256<<20)
	for i := range buf {
		buf[i] = byte(i)
	}
	peak := PeakRSSMiB()
	if peak < 256 || buf[7] != 7 {
		t.Fatalf("peak RSS %v MiB after touching 256 MiB", peak)
	}
	buf = nil
	runtime.GC()
	debug.FreeOSMemory()
	if err := ResetPeakRSS(); err != nil {
		t.Skipf("this kernel keeps VmHWM: %v", err)
	}
	if after := PeakRSSMiB(); after > peak-128 {
		t.Fatalf("peak RSS %v MiB after freeing 256 MiB and resetting; was %v", after, peak)
	}
}
