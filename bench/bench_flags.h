// The one command-line parser of the benchmarks: each bench declares its
// flags as a table (name, destination, help, bounds) and calls
// ParseBenchFlagsOrExit. Flags are written --name=value; --help (or -h)
// prints the usage built from the table. Bench code, not product code.
#ifndef REDRIVE_BENCH_BENCH_FLAGS_H_
#define REDRIVE_BENCH_BENCH_FLAGS_H_

#include <string>
#include <variant>

#include "absl/status/status.h"
#include "absl/types/span.h"

namespace redrive_bench {

// One --name=value flag. `target` is where the value goes; it holds the
// default before parsing (the usage prints it). An int flag's value must be a
// decimal integer of at least `min`; a required flag must be given, and a
// required string flag must not be empty.
struct BenchFlag {
  const char* name;  // without the leading "--"
  std::variant<int*, std::string*> target;
  const char* help;
  int min = 0;
  bool required = false;
};

// Parses argv[1..argc) into the flags' targets. Returns OK, or
// InvalidArgument naming the first bad argument: not of the form
// --name=value, an unknown name, a bad or too small number, or a missing
// required flag. Sets `*help` (and parses nothing further) when --help or -h
// is among the arguments.
absl::Status ParseBenchFlags(absl::Span<const BenchFlag> flags, int argc, const char* const* argv,
                             bool* help);

// "usage: <program> <flags>\n<summary>\n" then one line per flag: its name,
// its default (as currently held by its target) and its help.
std::string BenchUsage(const char* program, const char* summary, absl::Span<const BenchFlag> flags);

// ParseBenchFlags for main: on --help prints the usage on stdout and exits 0;
// on an error prints "<program>: <error>" and the usage on stderr and exits 1.
void ParseBenchFlagsOrExit(const char* program, const char* summary,
                           absl::Span<const BenchFlag> flags, int argc, char** argv);

}  // namespace redrive_bench

#endif  // REDRIVE_BENCH_BENCH_FLAGS_H_
