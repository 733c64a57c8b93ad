//go:build !linux

package decide_test

func threadNice() (int, bool) { return 0, false }
