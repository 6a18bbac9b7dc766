#include "reconcilers/bootstrap/placeholders.h"

#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

namespace vmlab::reconcilers::bootstrap {
namespace {

struct Case {
  const char* what;
  std::string text;
  std::vector<std::pair<std::string, std::string>> values;
  std::string expected;
};

TEST(PlaceholdersTest, FillsEachPlaceholderOnceAndNeverWhatAValueBroughtIn) {
  const std::vector<Case> cases = {
      {"every occurrence", "@A@ and @A@", {{"A", "x"}}, "x and x"},
      {"a value naming a later placeholder stays as it is",
       "@A@ @B@",
       {{"A", "@B@"}, {"B", "b"}},
       "@B@ b"},
      {"a value naming an earlier placeholder stays as it is",
       "@A@ @B@",
       {{"A", "a"}, {"B", "@A@"}},
       "a @A@"},
      {"a value holding its own placeholder", "@A@", {{"A", "<@A@>"}}, "<@A@>"},
      {"the shell's $@ and mail addresses are kept",
       R"(exec "$@" # root@host @A@)",
       {{"A", "v"}},
       R"(exec "$@" # root@host v)"},
      {"an unknown name is kept and the next @ may open one",
       "@NOPE@A@",
       {{"A", "v"}},
       "@NOPEv"},
      {"a doubled @ before a placeholder", "@@A@", {{"A", "v"}}, "@v"},
      {"an @ left open at the end", "x @A", {{"A", "v"}}, "x @A"},
      {"an empty value", "[@A@]", {{"A", ""}}, "[]"},
      {"no placeholder at all", "plain text", {{"A", "v"}}, "plain text"},
      {"empty text", "", {{"A", "v"}}, ""},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(FillPlaceholders(c.text, c.values), c.expected) << c.what;
  }
}

}  // namespace
}  // namespace vmlab::reconcilers::bootstrap
