#include "metrics/registry.h"

#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <sstream>

#include "metrics/process_metrics.h"

namespace vmlab::metrics {

Registry::Registry() : registry_(std::make_shared<prometheus::Registry>()) {}

Registry::~Registry() = default;

std::string Registry::Serialize() const {
  auto families = registry_->Collect();
  auto process = CollectProcessMetrics();
  families.insert(families.end(), process.begin(), process.end());
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, families);
  return out.str();
}

}  // namespace vmlab::metrics
