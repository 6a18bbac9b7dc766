#include "reconcilers/infrastructure/fault_injection.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>

namespace vmlab::reconcilers::infrastructure {

namespace {

long ReadLimit() {
  const char* value = std::getenv("VMLAB_FAULT_KILL_AFTER_MUTATION");
  if (!value || !*value) return 0;
  char* end = nullptr;
  const long n = std::strtol(value, &end, 10);
  return end && *end == '\0' && n > 0 ? n : 0;
}

const long kLimit = ReadLimit();
std::atomic<long> mutations{0};

}  // namespace

long KillAfterMutation() { return kLimit; }

void MutationDone(std::string_view what, std::string_view target) {
  if (kLimit == 0) return;
  const long n = mutations.fetch_add(1, std::memory_order_relaxed) + 1;
  // Every change is named (the test sees which ones a run made), the last one
  // as the kill. write(2) of a stack buffer: no lock another thread may hold.
  char line[512];
  const int length = std::snprintf(
      line, sizeof line, "vmlab: fault injection: %s %ld (%.*s %.*s)\n",
      n == kLimit ? "SIGKILL after mutation" : "mutation", n, static_cast<int>(what.size()),
      what.data(), static_cast<int>(target.size()), target.data());
  if (length > 0) {
    [[maybe_unused]] const auto written =
        ::write(STDERR_FILENO, line,
                std::min<std::size_t>(static_cast<std::size_t>(length), sizeof line - 1));
  }
  if (n != kLimit) return;
  ::kill(::getpid(), SIGKILL);
  ::pause();  // SIGKILL cannot be caught: never returns
}

}  // namespace vmlab::reconcilers::infrastructure
