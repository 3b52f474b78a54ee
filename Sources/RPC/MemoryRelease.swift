/// glibc's `malloc_trim`, which the Glibc module does not export (it lives in
/// `<malloc.h>`): returns free memory at the top of malloc's arenas to the
/// system. A connection that buffered megabytes for a slow peer would
/// otherwise leave them resident after it closed.
#if canImport(Glibc)
@_silgen_name("malloc_trim")
private func glibcMallocTrim(_ pad: Int) -> Int32

func releaseFreedMemory() {
    _ = glibcMallocTrim(0)
}
#else
func releaseFreedMemory() {}
#endif
