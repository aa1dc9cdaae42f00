// Tests of the task keys no option sets (today a jsonl run's "data_fingerprint"), which a resumed
// run takes from its own config.json (make_run_task, rl/llm/tasks/task.h): the function itself,
// and group RL resumed on a jsonl file, which names a changed file as such.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "engine/checkpoint.h"
#include "engine/fs.h"
#include "jsonl_data.h"
#include "rl/llm/group_rl.h"
#include "rl/llm/lm.h"
#include "rl/llm/sft.h"
#include "rl/llm/tasks/jsonl.h"
#include "test_util.h"
#include "tiny_lm_runs.h"

using namespace rlft;
using namespace rlft::llm;
using rlft::testing::error_of;
using rlft::testing::files_of;
using rlft::testing::temp_dir;

namespace {

using namespace rlft::testing::jsonl;  // line, reversals, write

// 60 prompts "q<i>?" → "a<i>": 6 each in test and validation, 48 in train.
std::string sixty_prompts() {
  std::string text;
  for (int i = 0; i < 60; ++i) text += line(str("q", i, "?"), str("a", i));
  return text;
}

// A run directory whose config.json records `task` (as a trainer's would, among other keys).
void record(const std::string& run_dir, const TaskConfig& task) {
  fs::make_dirs(run_dir);
  json::Value v = json::Value::object();
  v.set("algorithm", "sft");
  set_task_keys(v, task);
  fs::atomic_write_file(run_dir + "/config.json", v.dump(2) + "\n");
}

std::string changed_error(const std::string& path, const std::string& now,
                          const std::string& recorded) {
  return path + ": changed since the run was trained: fingerprint " + data_fingerprint(now) +
         ", recorded " + data_fingerprint(recorded);
}

}  // namespace

TEST(MakeRunTask, AResumeTakesTheFoundKeysItsRunRecorded) {
  const std::string dir = temp_dir("run_task_keys");
  const std::string path = dir + "/d.jsonl", other = dir + "/other.jsonl";
  const std::string text = sixty_prompts(), changed = text + line("new?", "x");
  fs::atomic_write_file(path, text);
  fs::atomic_write_file(other, changed);
  TaskConfig was = jsonl_config(path);
  was.data_fingerprint = data_fingerprint(text);
  record(dir + "/run", was);

  // A fresh run ("" for its directory): the fingerprint of the file as read, to record.
  TaskConfig fresh = jsonl_config(path);
  EXPECT_EQ(make_run_task(fresh, "")->name(), "jsonl");
  EXPECT_EQ(fresh.data_fingerprint, data_fingerprint(text));

  // A resume on the file as it was: the recorded fingerprint, checked.
  TaskConfig same = jsonl_config(path);
  make_run_task(same, dir + "/run");
  EXPECT_EQ(same.data_fingerprint, data_fingerprint(text));

  // The file changed: the recorded fingerprint names it as changed.
  fs::atomic_write_file(path, changed);
  TaskConfig now = jsonl_config(path);
  EXPECT_EQ(error_of([&] { make_run_task(now, dir + "/run"); }),
            changed_error(path, changed, text));
  // A fresh run of the same name is not checked against the old record.
  TaskConfig fresh_again = jsonl_config(path);
  make_run_task(fresh_again, "");
  EXPECT_EQ(fresh_again.data_fingerprint, data_fingerprint(changed));

  // Another file, or another task, takes nothing from the record: the resume's comparison of
  // the settings names what differs.
  TaskConfig other_file = jsonl_config(other);
  make_run_task(other_file, dir + "/run");
  EXPECT_EQ(other_file.data_fingerprint, data_fingerprint(changed));
  TaskConfig arith;
  make_run_task(arith, dir + "/run");
  EXPECT_EQ(arith.data_fingerprint, "");

  // A fingerprint the caller already has (an RL run's init recorded it) is kept as it is.
  TaskConfig given = jsonl_config(path);
  given.data_fingerprint = data_fingerprint(changed);
  make_run_task(given, dir + "/run");
  EXPECT_EQ(given.data_fingerprint, data_fingerprint(changed));

  // No run to resume: nothing taken (the trainer's resume checks say so).
  TaskConfig missing = jsonl_config(path);
  make_run_task(missing, dir + "/no-such-run");
  EXPECT_EQ(missing.data_fingerprint, data_fingerprint(changed));

  // A run recorded without a fingerprint (from before fingerprints): nothing to take.
  record(dir + "/old", jsonl_config(path));
  TaskConfig old = jsonl_config(path);
  make_run_task(old, dir + "/old");
  EXPECT_EQ(old.data_fingerprint, data_fingerprint(changed));
}

namespace {

GroupRLConfig tiny_grpo(const std::string& dir, const std::string& init, const std::string& name) {
  GroupRLConfig c = group_rl_defaults("grpo");
  c.init = init;
  c.train_prompts = 8;
  c.prompts = 4;
  c.group_size = 4;
  c.steps = 2;
  c.max_new_tokens = 4;
  c.eval_prompts = 0;
  c.checkpoint_every = 1;
  c.stop_after = 1;
  c.out_dir = dir;
  c.name = name;
  c.quiet = true;
  return c;
}

}  // namespace

// A resumed group RL run whose jsonl file changed is refused with the error that names the file
// as changed, whether the fingerprint it checks is its init's (an SFT run that recorded one) or,
// for an init from before fingerprints, its own record; the file as it was resumes to the end.
TEST(ResumeRecordedKeys, GroupRLOnAChangedJsonlFileIsRefused) {
  const std::string dir = temp_dir("grpo_recorded_keys");
  const std::string path = dir + "/d.jsonl";
  // One answer edited: the same characters (the tokenizer takes it), another fingerprint.
  const std::string text = sixty_prompts();
  std::string changed = text;
  changed.replace(changed.find(R"("a5")"), 4, R"("a6")");
  fs::atomic_write_file(path, text);
  train_sft(rlft::testing::tiny_sft_config(dir, "sft", 16, jsonl_config(path)));
  std::filesystem::copy_file(dir + "/sft/checkpoint.safetensors", dir + "/old-sft.safetensors");
  forget_fingerprint(dir + "/old-sft.safetensors");
  ASSERT_EQ(sft_config_from_json(load_model(dir + "/old-sft.safetensors").run_config)
                .task.data_fingerprint,
            "");

  for (const std::string& init : {dir + "/sft", dir + "/old-sft.safetensors"}) {
    SCOPED_TRACE(init);
    GroupRLConfig c = tiny_grpo(dir, init, "grpo");
    EXPECT_EQ(train_group_rl(c).steps, 1);
    // The run recorded the file's fingerprint, whichever init it came from.
    const json::Value config = json::parse(fs::read_file(dir + "/grpo/config.json"));
    EXPECT_EQ(config.at("data_fingerprint").as_string(), data_fingerprint(text));

    c.resume = true;
    c.stop_after = 0;
    fs::atomic_write_file(path, changed);
    const auto before = files_of(dir + "/grpo");
    EXPECT_EQ(error_of([&] { train_group_rl(c); }), changed_error(path, changed, text));
    EXPECT_EQ(files_of(dir + "/grpo"), before);  // a refused resume writes nothing

    // The file as it was: the run resumes to its end.
    fs::atomic_write_file(path, text);
    const GroupRLResult r = train_group_rl(c);
    EXPECT_EQ(r.start_step, 1);
    EXPECT_EQ(r.steps, 2);
  }
}
