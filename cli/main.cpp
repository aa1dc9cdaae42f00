// The rlft command: parses options, fills an algorithm's Config and runs it. Any rlft::Error
// becomes one line on stderr and exit status 2.
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>

#include "engine/error.h"

namespace rlft::cli {
int run_demo(int steps, uint64_t seed);
}

namespace {

const char* kUsage =
    "usage: rlft <command> [options]\n"
    "\n"
    "commands:\n"
    "  demo [--steps 2000] [--seed 0]   fit an MLP to sin(x) and print the loss (engine tour)\n"
    "  --help                           this text\n";

long parse_int(const std::string& flag, const std::string& value) {
  char* end = nullptr;
  const long v = std::strtol(value.c_str(), &end, 10);
  if (value.empty() || *end != '\0') throw rlft::Error(rlft::str(flag, ": '", value, "' is not an integer"));
  return v;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    if (argc < 2 || std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    }
    const std::string cmd = argv[1];
    if (cmd == "demo") {
      long steps = 2000, seed = 0;
      for (int i = 2; i < argc; ++i) {
        const std::string a = argv[i];
        RLFT_CHECK(i + 1 < argc, a, ": missing value");
        if (a == "--steps") steps = parse_int(a, argv[++i]);
        else if (a == "--seed") seed = parse_int(a, argv[++i]);
        else throw rlft::Error(rlft::str("demo: unknown option '", a, "'"));
      }
      RLFT_CHECK(steps > 0, "--steps: must be positive, got ", steps);
      return rlft::cli::run_demo(int(steps), uint64_t(seed));
    }
    throw rlft::Error(rlft::str("unknown command '", cmd, "' (see rlft --help)"));
  } catch (const rlft::Error& e) {
    std::fprintf(stderr, "rlft: error: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "rlft: internal error: %s\n", e.what());
    return 1;
  }
}
