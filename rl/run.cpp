#include "rl/run.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "engine/cuda.h"
#include "engine/dtype.h"
#include "engine/error.h"
#include "engine/fs.h"

#ifndef RLFT_GIT_REVISION
#define RLFT_GIT_REVISION "unknown"
#endif

namespace rlft::rl {

std::string run_path(const std::string& runs_dir, const std::string& name) {
  RLFT_CHECK(!runs_dir.empty(), "the runs directory (--runs-dir, --out-dir) is an empty path");
  RLFT_CHECK(!name.empty(), "the run name is empty");
  RLFT_CHECK(!std::isspace(static_cast<unsigned char>(name.front())) &&
                 !std::isspace(static_cast<unsigned char>(name.back())),
             "run name '", name, "': it starts or ends with a space");
  RLFT_CHECK(
      name != "." && name != ".." && name.find('/') == std::string::npos && name[0] != '-',
      "run name '", name,
      "': a run name is one path component (no '/', not '.' or '..', not starting with '-')");
  for (char c : name)
    RLFT_CHECK(static_cast<unsigned char>(c) >= 0x20 && c != 0x7f,
               "run name: a control character in it");
  return runs_dir + "/" + name;
}

void check_not_the_run(const std::string& run_dir,
                       std::initializer_list<std::pair<const char*, std::string>> inputs) {
  for (const auto& [flag, path] : inputs) {
    std::error_code ec;  // either missing: not the same directory
    RLFT_CHECK(path.empty() || !std::filesystem::equivalent(run_dir, path, ec), flag, " ", path,
               " is the run this command would write (", run_dir,
               "): a new run over its own input would destroy it; give it another --name");
  }
}

RunDir::RunDir(const std::string& dir, bool fresh) : dir_(dir), fresh_(fresh) {
  RLFT_CHECK(!dir.empty(), "run directory: empty path");
  if (!fresh) RLFT_CHECK(fs::is_dir(dir), dir, ": nothing to resume (no such run directory)");
  fs::make_dirs(dir);
  // Probe writability now, so a bad --run-dir fails before any training.
  const std::string probe = path(".write_test");
  fs::atomic_write_file(probe, "ok");
  std::filesystem::remove(probe);
  // A process killed inside fs::atomic_write_file (SIGKILL, power loss) leaves its temporary
  // ".<file>.tmp.<…>" behind; one run is written by one process, so any found now is stale.
  for (const auto& entry : std::filesystem::directory_iterator(dir_)) {
    const std::string name = entry.path().filename().string();
    if (name.size() > 1 && name[0] == '.' && name.find(".tmp.") != std::string::npos &&
        entry.is_regular_file())
      fs::remove_file(entry.path().string());
  }
}

void RunDir::write_config(const json::Value& config) const {
  if (fresh_) {
    // Everything a run of any algorithm writes, so the directory never mixes two runs (an old
    // policy.safetensors beside a new config.json would play under the wrong settings).
    for (const char* stale :
         {"metrics.jsonl", "checkpoint.safetensors", "policy.safetensors", "critic.safetensors",
          "critic.previous.safetensors", "eval_test.json"})
      fs::remove_file(path(stale));
    for (const auto& entry : std::filesystem::directory_iterator(dir_))
      if (entry.path().extension() == ".svg") fs::remove_file(entry.path().string());
  }
  fs::atomic_write_file(path("config.json"), config.dump(2) + "\n");
}

void RunDir::log(const json::Value& metrics) const {
  fs::append_line(path("metrics.jsonl"), metrics.dump());
}

void RunDir::sync_log() const {
  const std::string metrics = path("metrics.jsonl");
  if (fs::exists(metrics)) fs::sync_file(metrics);
}

double metric_number(const json::Value& line, const std::string& key) {
  const json::Value& v = line.at(key);
  if (v.is_null()) return NAN;
  RLFT_CHECK(v.is_number(), "'", key, "' must be a number, got ", v.brief(60));
  return v.as_double();
}

std::vector<json::Value> read_metrics(const std::string& path, bool* cut) {
  RLFT_CHECK(fs::exists(path), "metrics file '", path, "' does not exist");
  std::string bytes = fs::read_file(path);
  if (cut) *cut = false;
  if (!bytes.empty() && bytes.back() != '\n') {
    const size_t start = bytes.find_last_of('\n') + 1;  // npos + 1 = 0: the only line
    try {
      json::parse(std::string_view(bytes).substr(start), path);
    } catch (const Error&) {
      bytes.resize(start);
      if (cut) *cut = true;
    }
  }
  return json::parse_jsonl(bytes, path);
}

std::vector<json::Value> RunDir::keep_metrics_through(
    int64_t step, const std::string& key,
    const std::function<void(const json::Value&)>& use) const {
  const std::string metrics = path("metrics.jsonl");
  if (!fs::exists(metrics)) return {};
  // A line cut short at the end came after the checkpoint (sync_log): it goes with the others.
  std::vector<json::Value> lines = read_metrics(metrics);
  std::vector<json::Value> kept;
  std::string text;
  size_t entry = 0;
  for (json::Value& line : lines) {
    ++entry;
    RLFT_CHECK(line.is_object(), metrics, ": entry ", entry, " is not an object");
    const json::Value* s = line.find(key);
    RLFT_CHECK(s && s->is_int(), metrics, ": entry ", entry, " has no integer \"", key, "\"",
               s ? " (it is " + s->brief() + ")" : std::string());
    if (s->as_int() > step) continue;
    if (use) {
      try {
        use(line);
      } catch (const Error& e) {
        throw Error(str(metrics, ": entry ", entry, ": ", e.what()));
      }
    }
    text += line.dump() + "\n";
    kept.push_back(std::move(line));
  }
  fs::atomic_write_file(metrics, text);  // only once every kept line has been read and used
  return kept;
}

namespace {

// Where, how far and how loudly a run goes: a resume may change these (RunDir::check_resumable).
bool exempt_from_resume_check(const std::string& key, const std::vector<std::string>& free) {
  static const char* const kAlwaysFree[] = {
      "resume",       "quiet",      "device",           "name",     "out_dir", "runs_dir",
      "git_revision", "stop_after", "checkpoint_every", "log_every"};
  return std::find(std::begin(kAlwaysFree), std::end(kAlwaysFree), key) != std::end(kAlwaysFree) ||
         std::find(free.begin(), free.end(), key) != free.end();
}

}  // namespace

void check_checkpoint_settings(const json::Value& recorded, const json::Value& now,
                               const std::vector<std::string>& free, const std::string& ckpt) {
  RLFT_CHECK(recorded.is_object(), ckpt,
             ": its record of the settings it was trained with is not a JSON object");
  for (const auto& [k, v] : now.as_object()) {
    const json::Value* old = recorded.find(k);
    if (old == nullptr || exempt_from_resume_check(k, free)) continue;
    RLFT_CHECK(*old == v, "--resume: setting '", k, "' is ", v.brief(), " but the checkpoint ",
               ckpt, " was trained with ", old->brief(),
               " (the run's config.json no longer says what "
               "the checkpoint records: edited?)");
  }
}

void RunDir::check_resume(const json::Value& now, const std::vector<std::string>& free) const {
  const std::string ckpt = path("checkpoint.safetensors");
  RLFT_CHECK(fs::exists(ckpt), ckpt, ": nothing to resume (no checkpoint)");
  check_resumable(now, free);
}

void RunDir::check_resumable(const json::Value& now, const std::vector<std::string>& free) const {
  const std::string config_path = path("config.json");
  RLFT_CHECK(fs::exists(config_path), config_path, ": nothing to resume (no config.json)");
  const json::Value before = json::parse(fs::read_file(config_path), config_path);
  RLFT_CHECK(before.is_object(), config_path, ": not a run's settings (not a JSON object)");
  if (const json::Value* algorithm = now.find("algorithm")) {
    const json::Value* old = before.find("algorithm");
    RLFT_CHECK(old && *old == *algorithm, "--resume: the run at ", dir_, " is ",
               old ? "a " + old->brief() + " run" : std::string("not an rlft run of any algorithm"),
               ", not a ", algorithm->brief(), " one");
  }
  for (const auto& [k, v] : now.as_object()) {
    if (exempt_from_resume_check(k, free)) continue;
    const json::Value* old = before.find(k);
    RLFT_CHECK(old && *old == v, "--resume: setting '", k, "' is ", v.brief(), " but the run at ",
               dir_, " was started with ", old ? old->brief() : std::string("(none)"),
               " (an option left out takes the run's recorded value; with a --preset the command "
               "line states the whole run: see its config.json)");
  }
}

RunDir open_run(const std::string& dir, bool resume, json::Value& config,
                const std::vector<std::string>& free) {
  config.set("git_revision", git_revision());
  RunDir run(dir, !resume);
  if (resume) run.check_resume(config, free);
  return run;
}

std::unique_ptr<RunDir> open_policy_run(const std::string& run_dir, bool resume,
                                        json::Value& config, const std::string& algorithm,
                                        const std::string& policy, const std::string& budget) {
  RLFT_CHECK(!resume || !run_dir.empty(), algorithm, ": resume needs a run directory");
  if (run_dir.empty()) return nullptr;
  auto run = std::make_unique<RunDir>(run_dir, /*fresh=*/!resume);
  config.set("algorithm", algorithm);
  config.set("git_revision", git_revision());
  config.set("policy", json::parse(policy));
  if (resume)
    run->check_resumable(config, {budget});
  else
    run->write_config(config);
  return run;
}

std::string git_revision() { return RLFT_GIT_REVISION; }

std::string format_duration(double s) {
  if (!(s >= 0) || s > 1e7) return "?";
  const long total = long(s + 0.5);
  char buf[32];
  if (total >= 3600)
    std::snprintf(buf, sizeof buf, "%ldh%02ldm", total / 3600, (total / 60) % 60);
  else if (total >= 60)
    std::snprintf(buf, sizeof buf, "%ldm%02lds", total / 60, total % 60);
  else
    std::snprintf(buf, sizeof buf, "%lds", total);
  return buf;
}

Device resolve_device(const std::string& device) {
  const Device d = Device::parse(device);
  if (d.is_cpu()) return d;
  std::string reason;
  const int n = cuda::device_count(&reason);
  RLFT_CHECK(n > 0, "--device ", device, ": no CUDA device answers (", reason, ")");
  RLFT_CHECK(d.index < n, "--device ", device, ": no such device (", n, " present)");
  return d;
}

StateReader::StateReader(const std::string& text, const std::string& ckpt, const std::string& name)
    : where_(ckpt + ": " + name) {
  state_ = json::parse(text, where_);
  RLFT_CHECK(state_.is_object(), where_, ": expected a JSON object, got ", state_.brief());
}

const json::Value& StateReader::field(const char* key) const {
  const json::Value* v = state_.find(key);
  RLFT_CHECK(v != nullptr, where_, ": field '", key, "' is missing");
  return *v;
}

int64_t StateReader::integer(const char* key, int64_t lo, int64_t hi) const {
  const json::Value& v = field(key);
  RLFT_CHECK(v.is_int(), where_, ": field '", key, "' must be an integer, got ", v.brief());
  const int64_t x = v.as_int();
  RLFT_CHECK(x >= lo && x <= hi, where_, ": field '", key, "' = ", x, " is out of range [", lo,
             ", ", hi, "]");
  return x;
}

double StateReader::finite(const char* key, double lo) const {
  const json::Value& v = field(key);
  RLFT_CHECK(v.is_number() && std::isfinite(v.as_double()) && v.as_double() >= lo, where_,
             ": field '", key, "' must be a finite number",
             std::isfinite(lo) ? str(" >= ", lo) : std::string(), ", got ", v.brief());
  return v.as_double();
}

double StateReader::number_or_nan(const char* key) const {
  const json::Value& v = field(key);
  RLFT_CHECK(v.is_null() || v.is_number(), where_, ": field '", key, "' must be a number, got ",
             v.brief());
  return v.is_null() ? NAN : v.as_double();
}

void check_checkpoint_policy(const std::map<std::string, std::string>& md, const std::string& ckpt,
                             const std::string& policy, const std::string& env_id) {
  const auto p = md.find("policy");
  json::Value recorded =
      p != md.end() ? json::parse(p->second, ckpt + ":policy") : json::Value::object();
  json::Value now = json::parse(policy);
  const auto e = md.find("env_id");
  if (e != md.end() && recorded.is_object()) recorded.set("env_id", e->second);
  now.set("env_id", env_id);
  check_checkpoint_settings(recorded, now, {}, ckpt);
}

void check_checkpoint_options(const std::string& cmd, int64_t checkpoint_every,
                              int64_t stop_after) {
  RLFT_CHECK(checkpoint_every >= 0, cmd,
             "--checkpoint-every must be >= 0 (0: only at --stop-after and the end), got ",
             checkpoint_every);
  RLFT_CHECK(stop_after >= 0, cmd, "--stop-after must be >= 0 (0: run to the end), got ",
             stop_after);
}

double printable(double x, int decimals) {
  const double scale = std::pow(10.0, decimals);
  return std::round(x * scale) == 0 ? 0.0 : x;
}

void check_number(const std::string& cmd, const char* flag, double v, double lo, bool open_lo,
                  double hi, const char* what) {
  RLFT_CHECK(std::isfinite(v) && (open_lo ? v > lo : v >= lo) && v <= hi, cmd, flag, " must be ",
             what, ", got ", v);
}

void check_count(const std::string& cmd, const char* flag, int64_t v, int64_t max) {
  RLFT_CHECK(v >= 1 && v <= max, cmd, flag, " must be in [1, ", max, "], got ", v);
}

std::vector<int64_t> parse_sizes(const std::string& flag, const std::string& text) {
  std::vector<int64_t> out;
  size_t pos = 0;
  while (pos <= text.size()) {
    const size_t comma = std::min(text.find(',', pos), text.size());
    const std::string item = text.substr(pos, comma - pos);
    char* end = nullptr;
    errno = 0;
    const long v = std::strtol(item.c_str(), &end, 10);
    // Digits only: strtol alone would take " 64" (but not "64 ") and "+64".
    RLFT_CHECK(!item.empty() && std::isdigit(static_cast<unsigned char>(item[0])) && *end == '\0' &&
                   errno == 0 && v > 0,
               flag, ": '", text, "' is not a comma-separated list of positive sizes");
    out.push_back(v);
    pos = comma + 1;
  }
  return out;
}

}  // namespace rlft::rl
