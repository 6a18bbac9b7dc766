// The Reconciler seam, as in controller-runtime: Reconcile takes only a key
// (the lab name), reads the whole current state and converges it. The
// Manager owns retries, backoff, exception recovery and metrics; reconcilers
// never count their own reconciles.
#pragma once

#include <string>

#include "controller/clock.h"
#include "crds/result.h"

namespace vmlab::controller {

struct ReconcileResult {
  // Reconcile again after this long, even if nothing changes (0: not needed).
  Duration requeue_after = Duration::zero();
  // Reconcile again with backoff (prefer requeue_after or an error).
  bool requeue = false;
};

class Reconciler {
 public:
  virtual ~Reconciler() = default;
  // Errors whose code IsRetryable are retried with per-key backoff; others are
  // terminal: logged, counted and not retried until the key is added again.
  // May be called from several threads, never twice at once for one key.
  [[nodiscard]] virtual Result<ReconcileResult> Reconcile(const std::string& key) = 0;
};

}  // namespace vmlab::controller
