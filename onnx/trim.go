package onnx

/*
#include <malloc.h>
*/
import "C"

// ReleaseFreedMemory hands the C heap's free pages back to the system
// (glibc's malloc_trim). ONNX Runtime frees a closed session's buffers to
// glibc, which keeps them in per-thread arenas: without this, every hot
// reload left its predecessor's memory in the process (RSS 270 MB to
// 970 MB over 30 reloads on the shipped set) although nothing used it.
func ReleaseFreedMemory() {
	C.malloc_trim(0)
}
