package history

// Sweeps is how many times the store looked for silent functions to drop.
func (s *Store) Sweeps() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sweeps
}
