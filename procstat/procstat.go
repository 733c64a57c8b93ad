// Package procstat reads this process's resource use on Linux, for the
// benchmarks' reports: peak resident memory and CPU time.
package procstat

import (
	"os"
	"strconv"
	"strings"
	"syscall"
)

// PeakRSSMiB is the process's high-water resident memory (VmHWM), -1 when
// /proc cannot say.
func PeakRSSMiB() float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return -1
}

// CPUSeconds is the process's user and system CPU time so far.
func CPUSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}

// ResetPeakRSS starts VmHWM again from the current resident memory (Linux:
// /proc/self/clear_refs), so that PeakRSSMiB then says the peak of what
// came after; an error where the kernel does not allow it.
func ResetPeakRSS() error {
	return os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
}
