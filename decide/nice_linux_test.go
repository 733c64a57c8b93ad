package decide_test

import "syscall"

// threadNice is the calling thread's nice value (the raw system call
// answers 20 - nice).
func threadNice() (int, bool) {
	p, err := syscall.Getpriority(syscall.PRIO_PROCESS, syscall.Gettid())
	return 20 - p, err == nil
}
