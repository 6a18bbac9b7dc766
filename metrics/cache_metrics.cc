#include "metrics/cache_metrics.h"

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include <string>

namespace vmlab::metrics {
namespace {
constexpr const char* kCaches[] = {"apt", "images", "archives", "golden"};
}  // namespace

struct CacheMetrics::Metrics {
  prometheus::Family<prometheus::Counter>* requests;
  prometheus::Family<prometheus::Counter>* served;
  prometheus::Family<prometheus::Gauge>* stored;
  prometheus::Family<prometheus::Counter>* builds;
  prometheus::Gauge* golden_age;
  prometheus::Family<prometheus::Counter>* warmed;
};

CacheMetrics::CacheMetrics(Registry& registry) : m_(std::make_unique<Metrics>()) {
  auto& r = registry.prometheus();
  m_->requests = &prometheus::BuildCounter()
                      .Name("vmlab_cache_requests_total")
                      .Help(
                          "Requests the caches answered, by cache and hit or miss (from the "
                          "cache service's own log)")
                      .Register(r);
  m_->served = &prometheus::BuildCounter()
                    .Name("vmlab_cache_served_bytes_total")
                    .Help("Bytes the caches served to nodes, by cache")
                    .Register(r);
  m_->stored = &prometheus::BuildGauge()
                    .Name("vmlab_cache_bytes")
                    .Help("Bytes the caches hold on disk, by cache")
                    .Register(r);
  m_->builds = &prometheus::BuildCounter()
                    .Name("vmlab_golden_image_builds_total")
                    .Help("Golden base image builds, by result (succeeded, failed)")
                    .Register(r);
  for (const char* result : {"succeeded", "failed"}) m_->builds->Add({{"result", result}});
  m_->golden_age = &prometheus::BuildGauge()
                        .Name("vmlab_golden_image_age_seconds")
                        .Help("Age of the oldest golden base image on disk (0: none)")
                        .Register(r)
                        .Add({});
  m_->warmed = &prometheus::BuildCounter()
                    .Name("vmlab_cache_warmed_images_total")
                    .Help("Images fetched into a cache ahead of the nodes, by result")
                    .Register(r);
  for (const char* result : {"warmed", "failed"}) {
    m_->warmed->Add({{"cache", "images"}, {"result", result}});
  }
  for (const char* cache : kCaches) {
    for (const char* result : {"hit", "miss"})
      m_->requests->Add({{"cache", cache}, {"result", result}});
    m_->served->Add({{"cache", cache}});
    m_->stored->Add({{"cache", cache}});
  }
}

CacheMetrics::~CacheMetrics() = default;

void CacheMetrics::CountRequests(std::string_view cache, std::uint64_t hits, std::uint64_t misses) {
  const std::string name(cache);
  m_->requests->Add({{"cache", name}, {"result", "hit"}}).Increment(static_cast<double>(hits));
  m_->requests->Add({{"cache", name}, {"result", "miss"}}).Increment(static_cast<double>(misses));
}

void CacheMetrics::CountServedBytes(std::string_view cache, std::uint64_t bytes) {
  m_->served->Add({{"cache", std::string(cache)}}).Increment(static_cast<double>(bytes));
}

void CacheMetrics::CountGoldenBuild(bool succeeded) {
  m_->builds->Add({{"result", succeeded ? "succeeded" : "failed"}}).Increment();
}

void CacheMetrics::SetGoldenImageAge(double seconds) { m_->golden_age->Set(seconds); }

void CacheMetrics::CountWarmed(std::string_view cache, bool warmed) {
  m_->warmed->Add({{"cache", std::string(cache)}, {"result", warmed ? "warmed" : "failed"}})
      .Increment();
}

void CacheMetrics::SetStoredBytes(std::string_view cache, double bytes) {
  m_->stored->Add({{"cache", std::string(cache)}}).Set(bytes);
}

}  // namespace vmlab::metrics
