#include "bench/bench_flags.h"

#include <cstdlib>
#include <iostream>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace redrive_bench {
namespace {

const BenchFlag* Find(absl::Span<const BenchFlag> flags, absl::string_view name) {
  for (const BenchFlag& f : flags) {
    if (name == f.name) return &f;
  }
  return nullptr;
}

}  // namespace

absl::Status ParseBenchFlags(absl::Span<const BenchFlag> flags, int argc, const char* const* argv,
                             bool* help) {
  *help = false;
  for (int i = 1; i < argc; ++i) {
    const absl::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      *help = true;
      return absl::OkStatus();
    }
  }
  std::set<std::string> seen;
  for (int i = 1; i < argc; ++i) {
    const absl::string_view arg = argv[i];
    const size_t eq = arg.find('=');
    if (!absl::StartsWith(arg, "--") || eq == absl::string_view::npos) {
      return absl::InvalidArgumentError(absl::StrCat("bad argument ", arg, " (want --name=value)"));
    }
    const absl::string_view name = arg.substr(2, eq - 2);
    const absl::string_view value = arg.substr(eq + 1);
    const BenchFlag* flag = Find(flags, name);
    if (flag == nullptr) return absl::InvalidArgumentError(absl::StrCat("unknown flag ", arg));
    if (std::string* const* s = std::get_if<std::string*>(&flag->target)) {
      **s = std::string(value);
    } else {
      int n = 0;
      if (!absl::SimpleAtoi(value, &n) || n < flag->min) {
        return absl::InvalidArgumentError(
            absl::StrCat("bad number in ", arg, " (want an integer >= ", flag->min, ")"));
      }
      *std::get<int*>(flag->target) = n;
    }
    seen.emplace(name);
  }
  for (const BenchFlag& f : flags) {
    if (!f.required) continue;
    std::string* const* s = std::get_if<std::string*>(&f.target);
    if (seen.count(f.name) == 0 || (s != nullptr && (*s)->empty())) {
      return absl::InvalidArgumentError(absl::StrCat("--", f.name, " is required"));
    }
  }
  return absl::OkStatus();
}

std::string BenchUsage(const char* program, const char* summary,
                       absl::Span<const BenchFlag> flags) {
  std::string out = absl::StrCat("usage: ", program);
  for (const BenchFlag& f : flags) {
    absl::StrAppend(&out, f.required ? " --" : " [--", f.name, "=",
                    std::holds_alternative<int*>(f.target) ? "N" : "S", f.required ? "" : "]");
  }
  absl::StrAppend(&out, "\n", summary, "\n");
  for (const BenchFlag& f : flags) {
    std::string left = absl::StrCat("  --", f.name);
    if (!f.required) {
      if (const int* const* n = std::get_if<int*>(&f.target)) {
        absl::StrAppend(&left, "=", **n);
      } else {
        absl::StrAppend(&left, "=", *std::get<std::string*>(f.target));
      }
    }
    if (left.size() < 26) left.resize(26, ' ');
    absl::StrAppend(&out, left, " ", f.help, f.required ? " (required)" : "", "\n");
  }
  return out;
}

void ParseBenchFlagsOrExit(const char* program, const char* summary,
                           absl::Span<const BenchFlag> flags, int argc, char** argv) {
  bool help = false;
  // The usage shows the defaults, so build it before parsing.
  const std::string usage = BenchUsage(program, summary, flags);
  const absl::Status s = ParseBenchFlags(flags, argc, argv, &help);
  if (help) {
    std::cout << usage;
    std::exit(0);
  }
  if (!s.ok()) {
    std::cerr << program << ": " << s.message() << "\n" << usage;
    std::exit(1);
  }
}

}  // namespace redrive_bench
