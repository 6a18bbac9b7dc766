// Crash points for the fault-injection tests (tests/e2e/crash_test.py).
//
// With VMLAB_FAULT_KILL_AFTER_MUTATION=N in its environment, the process kills
// itself with SIGKILL right after the Nth change it made to libvirt (a define,
// start, stop, undefine, volume created or uploaded or deleted, network
// update, pool step): nothing of vmlab runs after it, as when the machine
// loses power or the OOM killer strikes. Unset (always, outside tests), a
// mutation costs one relaxed atomic load. Each mutation is named on stderr,
// the last as "SIGKILL after mutation N (...)", so a test knows what a run
// changed and where it died.
#pragma once

#include <string_view>

namespace vmlab::reconcilers::infrastructure {

// Call after each successful mutating libvirt call; `what` and `target` name it.
void MutationDone(std::string_view what, std::string_view target);

// N from the environment, 0 when unset; logged once at start by the controller.
[[nodiscard]] long KillAfterMutation();

}  // namespace vmlab::reconcilers::infrastructure
