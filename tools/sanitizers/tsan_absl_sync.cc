// Makes Debian's uninstrumented absl::Mutex visible to ThreadSanitizer (--config=tsan).
//
// libabsl_synchronization.so is built without -fsanitize=thread, so its lock operations
// (atomics and futexes inside the library) create no happens-before edges: every field this
// repository guards with an absl::Mutex would be reported as racy, and so would gRPC's
// internals (gpr_mu is an absl::Mutex). Linked into the executable and exported
// (-rdynamic), the definitions below take precedence over the library's for every caller,
// our code, gRPC and absl itself (its internal calls go through the PLT). Each forwards to
// the real function and reports the lock or unlock to TSan with the annotation interface
// an instrumented absl would have used.
//
// Approximations: a CondVar wait or Await is modelled as unlock + lock of a writer lock
// (nothing here waits with a reader lock held); Notification::Notify also releases on the
// flag that the inlined HasBeenNotified() reads with acquire. ~Mutex is left alone: most
// mutexes die inside gRPC objects whose lifetime is settled by gRPC's own uninstrumented
// reference counts, and TSan forgets a mutex's state anyway when its memory is freed.
#include <dlfcn.h>
#include <sanitizer/tsan_interface.h>

#include <cstdio>
#include <cstdlib>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"

namespace {

template <typename Fn>
Fn Real(const char* symbol) {
  void* f = dlsym(RTLD_NEXT, symbol);
  if (f == nullptr) {
    std::fprintf(stderr, "tsan_absl_sync: %s not found (absl ABI changed?)\n", symbol);
    std::abort();
  }
  return reinterpret_cast<Fn>(f);
}

#define WXP_ABSL "_ZN4absl7debian3"

using MuFn = void (*)(absl::Mutex*);
using MuTryFn = bool (*)(absl::Mutex*);
using MuCondFn = void (*)(absl::Mutex*, const absl::Condition&);
using MuCondTimeoutFn = bool (*)(absl::Mutex*, const absl::Condition&, absl::Duration);
using MuCondDeadlineFn = bool (*)(absl::Mutex*, const absl::Condition&, absl::Time);
using CvFn = void (*)(absl::CondVar*, absl::Mutex*);
using CvTimeoutFn = bool (*)(absl::CondVar*, absl::Mutex*, absl::Duration);
using CvDeadlineFn = bool (*)(absl::CondVar*, absl::Mutex*, absl::Time);
using NotifyFn = void (*)(absl::Notification*);

void Locked(void* mu, unsigned flags) {
  __tsan_mutex_pre_lock(mu, flags);
  __tsan_mutex_post_lock(mu, flags, 0);
}

void Unlocked(void* mu, unsigned flags) {
  __tsan_mutex_pre_unlock(mu, flags);
  __tsan_mutex_post_unlock(mu, flags);
}

// Some real functions call others wrapped here through the PLT (WaitWithTimeout calls
// WaitWithDeadline, for one): only the outermost call on a thread is reported.
thread_local int depth = 0;
struct Outermost {
  Outermost() : outer(depth++ == 0) {}
  ~Outermost() { --depth; }
  const bool outer;
};

}  // namespace

namespace absl {

// Lock and the *When variants block inside the real call; TSan sees the acquisition once
// it has happened, which is what the race detector needs.
void Mutex::Lock() {
  static const MuFn real = Real<MuFn>(WXP_ABSL "5Mutex4LockEv");
  Outermost o;
  if (o.outer) __tsan_mutex_pre_lock(this, 0);
  real(this);
  if (o.outer) __tsan_mutex_post_lock(this, 0, 0);
}

void Mutex::ReaderLock() {
  static const MuFn real = Real<MuFn>(WXP_ABSL "5Mutex10ReaderLockEv");
  Outermost o;
  if (o.outer) __tsan_mutex_pre_lock(this, __tsan_mutex_read_lock);
  real(this);
  if (o.outer) __tsan_mutex_post_lock(this, __tsan_mutex_read_lock, 0);
}

bool Mutex::TryLock() {
  static const MuTryFn real = Real<MuTryFn>(WXP_ABSL "5Mutex7TryLockEv");
  Outermost o;
  if (o.outer) __tsan_mutex_pre_lock(this, __tsan_mutex_try_lock);
  const bool ok = real(this);
  if (o.outer)
    __tsan_mutex_post_lock(this, __tsan_mutex_try_lock | (ok ? 0 : __tsan_mutex_try_lock_failed),
                           0);
  return ok;
}

bool Mutex::ReaderTryLock() {
  static const MuTryFn real = Real<MuTryFn>(WXP_ABSL "5Mutex13ReaderTryLockEv");
  Outermost o;
  if (o.outer) __tsan_mutex_pre_lock(this, __tsan_mutex_try_read_lock);
  const bool ok = real(this);
  if (o.outer)
    __tsan_mutex_post_lock(this,
                           ok ? __tsan_mutex_try_read_lock : __tsan_mutex_try_read_lock_failed, 0);
  return ok;
}

void Mutex::Unlock() {
  static const MuFn real = Real<MuFn>(WXP_ABSL "5Mutex6UnlockEv");
  Outermost o;
  if (o.outer) __tsan_mutex_pre_unlock(this, 0);
  real(this);
  if (o.outer) __tsan_mutex_post_unlock(this, 0);
}

void Mutex::ReaderUnlock() {
  static const MuFn real = Real<MuFn>(WXP_ABSL "5Mutex12ReaderUnlockEv");
  Outermost o;
  if (o.outer) __tsan_mutex_pre_unlock(this, __tsan_mutex_read_lock);
  real(this);
  if (o.outer) __tsan_mutex_post_unlock(this, __tsan_mutex_read_lock);
}

void Mutex::LockWhen(const Condition& cond) {
  static const MuCondFn real = Real<MuCondFn>(WXP_ABSL "5Mutex8LockWhenERKNS0_9ConditionE");
  Outermost o;
  real(this, cond);
  if (o.outer) Locked(this, 0);
}

void Mutex::ReaderLockWhen(const Condition& cond) {
  static const MuCondFn real = Real<MuCondFn>(WXP_ABSL "5Mutex14ReaderLockWhenERKNS0_9ConditionE");
  Outermost o;
  real(this, cond);
  if (o.outer) Locked(this, __tsan_mutex_read_lock);
}

// The timed variants hold the lock on return whatever the condition's outcome.
bool Mutex::LockWhenWithTimeout(const Condition& cond, Duration timeout) {
  static const MuCondTimeoutFn real =
      Real<MuCondTimeoutFn>(WXP_ABSL "5Mutex19LockWhenWithTimeoutERKNS0_9ConditionENS0_8DurationE");
  Outermost o;
  const bool met = real(this, cond, timeout);
  if (o.outer) Locked(this, 0);
  return met;
}

bool Mutex::LockWhenWithDeadline(const Condition& cond, Time deadline) {
  static const MuCondDeadlineFn real =
      Real<MuCondDeadlineFn>(WXP_ABSL "5Mutex20LockWhenWithDeadlineERKNS0_9ConditionENS0_4TimeE");
  Outermost o;
  const bool met = real(this, cond, deadline);
  if (o.outer) Locked(this, 0);
  return met;
}

bool Mutex::ReaderLockWhenWithTimeout(const Condition& cond, Duration timeout) {
  static const MuCondTimeoutFn real = Real<MuCondTimeoutFn>(
      WXP_ABSL "5Mutex25ReaderLockWhenWithTimeoutERKNS0_9ConditionENS0_8DurationE");
  Outermost o;
  const bool met = real(this, cond, timeout);
  if (o.outer) Locked(this, __tsan_mutex_read_lock);
  return met;
}

bool Mutex::ReaderLockWhenWithDeadline(const Condition& cond, Time deadline) {
  static const MuCondDeadlineFn real = Real<MuCondDeadlineFn>(
      WXP_ABSL "5Mutex26ReaderLockWhenWithDeadlineERKNS0_9ConditionENS0_4TimeE");
  Outermost o;
  const bool met = real(this, cond, deadline);
  if (o.outer) Locked(this, __tsan_mutex_read_lock);
  return met;
}

void Mutex::Await(const Condition& cond) {
  static const MuCondFn real = Real<MuCondFn>(WXP_ABSL "5Mutex5AwaitERKNS0_9ConditionE");
  Outermost o;
  if (o.outer) Unlocked(this, 0);
  real(this, cond);
  if (o.outer) Locked(this, 0);
}

bool Mutex::AwaitWithTimeout(const Condition& cond, Duration timeout) {
  static const MuCondTimeoutFn real =
      Real<MuCondTimeoutFn>(WXP_ABSL "5Mutex16AwaitWithTimeoutERKNS0_9ConditionENS0_8DurationE");
  Outermost o;
  if (o.outer) Unlocked(this, 0);
  const bool met = real(this, cond, timeout);
  if (o.outer) Locked(this, 0);
  return met;
}

bool Mutex::AwaitWithDeadline(const Condition& cond, Time deadline) {
  static const MuCondDeadlineFn real =
      Real<MuCondDeadlineFn>(WXP_ABSL "5Mutex17AwaitWithDeadlineERKNS0_9ConditionENS0_4TimeE");
  Outermost o;
  if (o.outer) Unlocked(this, 0);
  const bool met = real(this, cond, deadline);
  if (o.outer) Locked(this, 0);
  return met;
}

void CondVar::Wait(Mutex* mu) {
  static const CvFn real = Real<CvFn>(WXP_ABSL "7CondVar4WaitEPNS0_5MutexE");
  Outermost o;
  if (o.outer) Unlocked(mu, 0);
  real(this, mu);
  if (o.outer) Locked(mu, 0);
}

bool CondVar::WaitWithTimeout(Mutex* mu, Duration timeout) {
  static const CvTimeoutFn real =
      Real<CvTimeoutFn>(WXP_ABSL "7CondVar15WaitWithTimeoutEPNS0_5MutexENS0_8DurationE");
  Outermost o;
  if (o.outer) Unlocked(mu, 0);
  const bool timed_out = real(this, mu, timeout);
  if (o.outer) Locked(mu, 0);
  return timed_out;
}

bool CondVar::WaitWithDeadline(Mutex* mu, Time deadline) {
  static const CvDeadlineFn real =
      Real<CvDeadlineFn>(WXP_ABSL "7CondVar16WaitWithDeadlineEPNS0_5MutexENS0_4TimeE");
  Outermost o;
  if (o.outer) Unlocked(mu, 0);
  const bool timed_out = real(this, mu, deadline);
  if (o.outer) Locked(mu, 0);
  return timed_out;
}

// Notify is deliberately not an Outermost: the Lock and Unlock inside it are the edge
// WaitForNotification acquires. HasBeenNotified() is inline (instrumented) and loads notified_yet_
// with acquire; the matching release-store happens inside the library, so it is announced here.
void Notification::Notify() {
  static const NotifyFn real = Real<NotifyFn>(WXP_ABSL "12Notification6NotifyEv");
  static_assert(sizeof(Mutex) == 8 && sizeof(Notification) == 16,
                "notified_yet_ is expected right after mutex_");
  __tsan_release(reinterpret_cast<char*>(this) + sizeof(Mutex));
  real(this);
}

}  // namespace absl
