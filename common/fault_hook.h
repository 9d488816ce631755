// Test fault hooks: named points where a process under test stops dead on request, so that a
// test's SIGKILL lands exactly there every time instead of when it happens to (the kill tests
// in tests/). A hook is armed through the environment only; production never sets it.
#ifndef WXP_COMMON_FAULT_HOOK_H_
#define WXP_COMMON_FAULT_HOOK_H_

namespace wxp {

// If the environment variable `marker_env` names a path and this call creates that file
// (exclusively), blocks until the process is killed; otherwise returns at once. A test arms
// the hook by deleting the file and disarms it by creating the file first; it learns that the
// process is holding here when the file appears. The first holder wins: a hook that fired
// stays disarmed (the marker exists) until the test deletes it again.
void HoldIfArmed(const char* marker_env);

}  // namespace wxp

#endif  // WXP_COMMON_FAULT_HOOK_H_
