// libFuzzer target: random bytes and mutated manifests through parse,
// validation and the canonical form. Beyond "no crash, hang or sanitizer
// report" it checks two properties of every valid document: its canonical form
// parses back valid with the same canonical text and spec hash, and every
// diagnostic has a real position.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "crds/canonical.h"
#include "crds/labcluster_parse.h"

namespace {

[[noreturn]] void Fail(const char* what, std::string_view detail) {
  std::fprintf(stderr, "manifest_fuzzer: %s\n%.*s\n", what, static_cast<int>(detail.size()),
               detail.data());
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace vmlab::crds;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto docs = ParseManifests("fuzz.yaml", text);
  ValidateManifestSet(docs);
  for (const ParsedDocument& doc : docs) {
    for (const Diagnostic& d : doc.diagnostics) {
      if (d.pos.line < 1 || d.pos.column < 1)
        Fail("diagnostic without a position", FormatDiagnostic(d));
    }
    if (!doc.valid()) continue;
    const std::string canonical = CanonicalYaml(*doc.object);
    auto again = ParseManifests("canonical.yaml", canonical);
    if (again.size() != 1 || !again[0].valid())
      Fail("canonical form does not parse back valid", canonical);
    if (CanonicalYaml(*again[0].object) != canonical)
      Fail("canonical form is not a fixed point", canonical);
    if (SpecHash(again[0].object->spec) != SpecHash(doc.object->spec))
      Fail("spec hash changed", canonical);
  }
  return 0;
}
