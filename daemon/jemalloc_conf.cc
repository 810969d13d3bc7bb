// jemalloc's compiled-in options for redrived; linked only when redrived
// runs on jemalloc (REDRIVE_ALLOCATOR=jemalloc, daemon/CMakeLists.txt).
// MALLOC_CONF in the environment still overrides them.
//
// oversize_threshold:1048576 — allocations of 1 MiB and more (gRPC's buffers
// of large requests) come from jemalloc's dedicated arena, whose pages go
// back to the kernel as soon as they are freed. With the default (8 MiB) the
// daemon's peak RSS while refusing four 250 MB Publish requests at once was
// 243-285 MB instead of glibc's 170 MB (hardening_e2e_test's bound is
// 256 MB); with it, 177-182 MB.

// jemalloc reads this symbol at its initialisation (its documented
// `malloc_conf` global); it must be a non-const pointer with C linkage.
extern "C" {
// NOLINTNEXTLINE(cppcoreguidelines-avoid-non-const-global-variables): jemalloc's interface
const char* malloc_conf = "oversize_threshold:1048576";
}
