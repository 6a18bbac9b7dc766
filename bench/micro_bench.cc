// Micro-benchmarks: work queue throughput and manifest parse + validate cost.
#include <benchmark/benchmark.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "controller/clock.h"
#include "controller/work_queue.h"
#include "crds/canonical.h"
#include "crds/labcluster_parse.h"

namespace {

using vmlab::controller::RealClock;
using vmlab::controller::WorkQueue;
using vmlab::controller::WorkQueueOptions;

std::string ReadExample() {
  std::ifstream in(std::string(VMLAB_SOURCE_DIR) + "/examples/spk-lab.yaml");
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// One key through Add, Get and Done.
void BM_QueueAddGetDone(benchmark::State& state) {
  RealClock clock;
  WorkQueue queue(clock, WorkQueueOptions{});
  const std::string key = "spk";
  for (auto _ : state) {
    queue.Add(key);
    auto got = queue.TryGet();
    queue.Done(*got);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_QueueAddGetDone);

// Adds of many distinct keys, then draining them.
void BM_QueueThroughput1000Keys(benchmark::State& state) {
  RealClock clock;
  WorkQueue queue(clock, WorkQueueOptions{});
  std::vector<std::string> keys;
  for (int i = 0; i < 1000; ++i) keys.push_back("lab-" + std::to_string(i));
  for (auto _ : state) {
    for (const auto& key : keys) queue.Add(key);
    while (auto got = queue.TryGet()) queue.Done(*got);
  }
  state.SetItemsProcessed(state.iterations() * 1000);
}
BENCHMARK(BM_QueueThroughput1000Keys);

// Repeated adds of a key already queued (collapsed).
void BM_QueueCollapsedAdd(benchmark::State& state) {
  RealClock clock;
  WorkQueue queue(clock, WorkQueueOptions{});
  queue.Add("spk");
  for (auto _ : state) queue.Add("spk");
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_QueueCollapsedAdd);

void BM_ParseValidateSeedLab(benchmark::State& state) {
  const std::string text = ReadExample();
  for (auto _ : state) {
    auto docs = vmlab::crds::ParseManifests("spk-lab.yaml", text);
    benchmark::DoNotOptimize(docs);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ParseValidateSeedLab);

void BM_SpecHashSeedLab(benchmark::State& state) {
  auto docs = vmlab::crds::ParseManifests("spk-lab.yaml", ReadExample());
  for (auto _ : state) benchmark::DoNotOptimize(vmlab::crds::SpecHash(docs[0].object->spec));
}
BENCHMARK(BM_SpecHashSeedLab);

// Cross-document rules over a folder of N labs (the watcher runs them on every change).
void BM_ValidateSetOfLabs(benchmark::State& state) {
  std::vector<vmlab::crds::ParsedDocument> docs;
  const std::string example = ReadExample();
  for (int i = 0; i < state.range(0); ++i) {
    std::string text = example;
    text.replace(text.find("name: spk"), 9, "name: lab" + std::to_string(i));
    text.replace(text.find("172.42.42.0/24"), 14,
                 "172." + std::to_string(16 + i / 256) + "." + std::to_string(i % 256) + ".0/24");
    auto parsed = vmlab::crds::ParseManifests("lab.yaml", text);
    docs.push_back(parsed.at(0));
  }
  for (auto _ : state) {
    auto copy = docs;
    vmlab::crds::ValidateManifestSet(copy);
    benchmark::DoNotOptimize(copy);
  }
}
BENCHMARK(BM_ValidateSetOfLabs)->Arg(100)->Arg(1000);

}  // namespace

BENCHMARK_MAIN();
