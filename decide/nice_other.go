//go:build !linux

package decide

import "errors"

// lowerThreadPriority is Linux's alone: elsewhere the table is decided at
// the server's own priority.
func lowerThreadPriority(int) error {
	return errors.New("per-thread priorities are Linux's")
}
