// rlft::Error — the one exception type of the project.
//
// Every check on user input (shapes, dtypes, devices, config values, files, env actions,
// JSONL lines, checkpoints) throws rlft::Error with a message that names the op or file and
// the offending values, e.g. "matmul: [2,3] @ [4,5]: inner dimensions differ (3 vs 4)".
// The CLI turns it into one line on stderr and exit status 2.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace rlft {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

// Concatenates anything printable with operator<< into a string.
template <typename... Args>
std::string str(Args&&... args) {
  std::ostringstream os;
  (os << ... << std::forward<Args>(args));
  return os.str();
}

}  // namespace rlft

// RLFT_CHECK(cond, parts...): throw rlft::Error(str(parts...)) when cond is false.
#define RLFT_CHECK(cond, ...)                                  \
  do {                                                         \
    if (!(cond)) throw ::rlft::Error(::rlft::str(__VA_ARGS__)); \
  } while (0)
