// `--resume` takes the run's recorded settings for the options not written on the command line.
#include <string>

#include "cli/args.h"
#include "cli/commands.h"
#include "engine/fs.h"
#include "engine/json.h"

namespace rlft::cli {

void take_recorded_settings(Args& a, const std::string& run_dir) {
  if (a.given("--preset")) return;  // the command line states the whole run: compared as it is
  const std::string path = run_dir + "/config.json";
  if (!fs::exists(path)) return;  // the library says there is nothing to resume
  a.take_unwritten(
      json::parse(fs::read_file(path), path), path,
      {"--resume", "--name", "--runs-dir", "--out-dir", "--device", "--quiet", "--stop-after"});
}

}  // namespace rlft::cli
