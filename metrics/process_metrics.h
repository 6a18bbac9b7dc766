// process_* metrics read from /proc/self, as Prometheus client libraries
// export them: CPU seconds, resident and virtual memory, open and maximum file
// descriptors, start time.
#pragma once

#include <prometheus/metric_family.h>

#include <vector>

namespace vmlab::metrics {

[[nodiscard]] std::vector<prometheus::MetricFamily> CollectProcessMetrics();

}  // namespace vmlab::metrics
