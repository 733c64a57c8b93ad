package decide

import "syscall"

// lowerThreadPriority gives the calling OS thread the scheduling nice
// value nice (Linux schedules threads, not processes, so the rest of the
// server keeps its own).
func lowerThreadPriority(nice int) error {
	return syscall.Setpriority(syscall.PRIO_PROCESS, syscall.Gettid(), nice)
}
