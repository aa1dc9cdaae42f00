// `--resume` takes the run's recorded settings for the options not written on the command line.
#include <cctype>
#include <string>
#include <vector>

#include "cli/args.h"
#include "cli/commands.h"
#include "engine/fs.h"
#include "engine/json.h"

namespace rlft::cli {

namespace {
// The config.json this invocation's --resume read and the flags that took its values: an error
// that later names one of them (a range check, say) says where the value came from.
struct Recorded {
  std::string path;
  std::vector<std::string> flags;
};
Recorded& recorded() {
  static Recorded r;
  return r;
}
}  // namespace

void take_recorded_settings(Args& a, const std::string& run_dir) {
  if (a.given("--preset")) return;  // the command line states the whole run: compared as it is
  const std::string path = run_dir + "/config.json";
  if (!fs::exists(path)) return;  // the library says there is nothing to resume
  recorded().flags = a.take_unwritten(
      json::parse(fs::read_file(path), path), path,
      {"--resume", "--name", "--runs-dir", "--out-dir", "--device", "--quiet", "--stop-after"});
  recorded().path = path;
}

std::string recorded_note(const std::string& message) {
  for (const std::string& flag : recorded().flags) {
    for (size_t at = message.find(flag); at != std::string::npos; at = message.find(flag, at + 1)) {
      const size_t end = at + flag.size();
      // The whole flag: --num-envs, not the start of --num-envs-x.
      const bool whole =
          end == message.size() || !(std::isalnum(static_cast<unsigned char>(message[end])) ||
                                     message[end] == '-' || message[end] == '_');
      if (whole)
        return " (" + flag + " was not written: --resume took the value recorded in " +
               recorded().path + ")";
    }
  }
  return "";
}

}  // namespace rlft::cli
