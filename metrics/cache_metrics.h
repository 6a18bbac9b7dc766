// Metrics of the caches vmlab runs or points nodes at, taken from the cache
// services' own records: vmlab_cache_requests_total{cache,result} (result
// hit or miss), vmlab_cache_served_bytes_total{cache} and vmlab_cache_bytes{cache}
// (what the cache holds on disk). Known caches exist from the start: apt,
// images (registry mirrors), archives, golden (base images: a node created
// from one is a hit, a build a miss).
// Thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <string_view>

#include "metrics/registry.h"

namespace vmlab::metrics {

class CacheMetrics {
 public:
  explicit CacheMetrics(Registry& registry);
  ~CacheMetrics();
  CacheMetrics(const CacheMetrics&) = delete;
  CacheMetrics& operator=(const CacheMetrics&) = delete;

  void CountRequests(std::string_view cache, std::uint64_t hits, std::uint64_t misses);
  void CountServedBytes(std::string_view cache, std::uint64_t bytes);
  void SetStoredBytes(std::string_view cache, double bytes);
  // Golden base images: vmlab_golden_image_builds_total{result} and
  // vmlab_golden_image_age_seconds (their hits and misses are cache="golden").
  void CountGoldenBuild(bool succeeded);
  void SetGoldenImageAge(double seconds);
  // vmlab_cache_warmed_images_total{cache,result}: images fetched into a
  // cache ahead of the nodes (result warmed or failed).
  void CountWarmed(std::string_view cache, bool warmed);

 private:
  struct Metrics;
  std::unique_ptr<Metrics> m_;
};

}  // namespace vmlab::metrics
