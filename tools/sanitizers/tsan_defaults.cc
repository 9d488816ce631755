// ThreadSanitizer suppressions compiled into --config=tsan executables (see asan_defaults.cc
// for why they are compiled in rather than read from a file).
//
// Every entry is for code outside this repository, with the reason it is not ours. Nothing
// in common/, server/, client/, tests/ or bench/ may be suppressed here: fix it instead.

extern "C" {

__attribute__((visibility("default"), used)) const char* __tsan_default_suppressions() {
  return
      // called_from_lib: TSan ignores the memory accesses of interceptors (memcpy, free,
      // recvmsg, epoll_wait, ...) called from these Debian libraries, which are not built
      // with TSan. They hand buffers, slices, fds and refcounted objects between their own
      // threads with their own atomics, which TSan cannot see, so it reported races between
      // e.g. gRPC's recvmsg on a poller thread and its grpc_slice_copy on the caller's
      // thread, or OpenSSL's and absl::Status's frees of objects whose last reference they
      // dropped atomically. Accesses made by our code, and locks taken anywhere
      // (tsan_absl_sync.cc), are still checked; each library needs its own line (a pattern
      // matching two libraries is fatal).
      "called_from_lib:libgrpc.so\n"
      "called_from_lib:libgrpc++.so\n"
      "called_from_lib:libgpr.so\n"
      "called_from_lib:libssl.so\n"
      "called_from_lib:libcrypto.so\n"
      "called_from_lib:libabsl_status.so\n"
      "called_from_lib:libabsl_cord.so\n"
      // absl's deadlock-detection graph, which ~Mutex updates under absl's internal
      // SpinLock (uninstrumented, and not an absl::Mutex, so tsan_absl_sync.cc cannot
      // model it): two threads destroying mutexes were reported racing in RemoveNode.
      "called_from_lib:libabsl_graphcycles_internal.so\n"
      // LibTorch's intra-op thread pool (at::parallel_for) copies tensor data on its workers
      // and hands results back through its own uninstrumented futures; TSan reported its
      // memcpy racing with the caller's TensorIteratorBase::compute_shape in demo_test.
      "called_from_lib:libtorch_cpu.so\n"
      "called_from_lib:libc10.so\n";
}

}  // extern "C"
