// A resumed LM run reads the inputs its run started with (rl/llm/lm.h, fingerprint_inputs): DPO,
// the reward model, PPO-RLHF, RRHF and group RL record in config.json the fingerprint of each
// file they read from another run or from disk (--init's checkpoint, --reward-model's, --prefs),
// and a resume after one of them changed is refused, naming the option, the path and both
// fingerprints, before anything in the run changes (its files are byte for byte as they were),
// also when the changed input would no longer load at all. With the inputs as they were the run
// resumes to its end (the resume-equals-straight tests of each trainer check that it ends as a
// straight run); a run recorded before fingerprints resumes unchecked and is not given them.
// Each records its inputs from the root: a run started with relative paths resumes from "/".
// A resume refuses a checkpoint of another tokenizer than the --init run's.
// The models are 1-layer SFT runs of a few steps: these tests are about bookkeeping (seconds).
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <string>
#include <type_traits>
#include <vector>

#include "engine/checkpoint.h"
#include "engine/error.h"
#include "engine/fs.h"
#include "engine/json.h"
#include "rl/llm/dpo.h"
#include "rl/llm/group_rl.h"
#include "rl/llm/lm.h"
#include "rl/llm/ppo_rlhf.h"
#include "rl/llm/reward_model.h"
#include "rl/llm/rlhf_data.h"
#include "rl/llm/rrhf.h"
#include "rl/llm/sft.h"
#include "rl/llm/tasks/jsonl.h"
#include "test_util.h"
#include "tiny_lm_runs.h"

using namespace rlft;
using namespace rlft::llm;

namespace {

using rlft::testing::error_of;
using rlft::testing::files_of;

// An input of a run as a test changes it: the option, the path given there, the file that path
// reads, and other bytes for it (another run's checkpoint, the pairs reordered) that still load.
struct Input {
  std::string flag, path, file, other;
};

std::string changed_error(const Input& in, const std::string& now, const std::string& was) {
  return in.flag + " " + in.path + ": changed since this run started: fingerprint " +
         data_fingerprint(now) + ", recorded " + data_fingerprint(was);
}

// The run's recorded fingerprints (its config.json's keys ending in "_fingerprint", but the
// task's data_fingerprint).
std::map<std::string, std::string> recorded_fingerprints(const std::string& run) {
  std::map<std::string, std::string> out;
  const json::Value config = json::parse(fs::read_file(run + "/config.json"));
  for (const auto& [k, v] : config.as_object())
    if (k != "data_fingerprint" && k.size() > 12 &&
        k.compare(k.size() - 12, 12, "_fingerprint") == 0)
      out[k] = v.as_string();
  return out;
}

// `config` (a fresh run at <out_dir>/<name>, a checkpoint every step) stopped after one step; then,
// for each input, a resume with that input changed (to its `other` bytes, and to bytes that are no
// checkpoint or preference file at all) is refused with the error naming it, the run's files
// untouched; with the inputs as they were the run resumes to its end, its fingerprints kept. Then
// the same run as <name>-old, recorded as a run from before fingerprints (no keys): it resumes to
// its end with every input changed, unchecked, and config.json still without the keys.
template <typename Config, typename Result>
void expect_changed_inputs_refused(Result (*train)(const Config&), Config config,
                                   const std::vector<Input>& inputs) {
  config.checkpoint_every = 1;
  const auto stopped = [&](const std::string& name) {
    config.name = name;
    config.resume = false;
    config.stop_after = 1;
    train(config);
    config.resume = true;
    config.stop_after = 0;
    return config.out_dir + "/" + name;
  };
  const std::string name = config.name, run = stopped(name);
  std::map<std::string, std::string> expected;
  for (const Input& in : inputs)
    expected[input_fingerprint_key(in.flag)] = data_fingerprint(fs::read_file(in.file));
  ASSERT_EQ(recorded_fingerprints(run), expected);

  const std::map<std::string, std::string> files = files_of(run);
  for (const Input& in : inputs) {
    SCOPED_TRACE(in.flag);
    const std::string original = fs::read_file(in.file);
    for (const std::string& other : {in.other, std::string("not a checkpoint\n")}) {
      ASSERT_NE(other, original);
      fs::atomic_write_file(in.file, other);
      EXPECT_EQ(error_of([&] { train(config); }), changed_error(in, other, original));
      EXPECT_TRUE(files_of(run) == files) << "a refused resume changed the run's files";
    }
    fs::atomic_write_file(in.file, original);
  }
  train(config);  // the inputs as they were: to the end
  EXPECT_FALSE(files_of(run) == files) << "the resume ran nothing";
  EXPECT_EQ(recorded_fingerprints(run), expected);

  // A run from before fingerprints: its inputs are not checked, and none is recorded now.
  const std::string old_run = stopped(name + "-old");
  json::Value old = json::parse(fs::read_file(old_run + "/config.json"));
  auto& members = old.as_object();
  members.erase(std::remove_if(members.begin(), members.end(),
                               [&](const auto& m) { return expected.count(m.first) > 0; }),
                members.end());
  fs::atomic_write_file(old_run + "/config.json", old.dump(2) + "\n");
  std::vector<std::string> originals;
  for (const Input& in : inputs) {
    originals.push_back(fs::read_file(in.file));
    fs::atomic_write_file(in.file, in.other);
  }
  const std::map<std::string, std::string> old_files = files_of(old_run);
  EXPECT_NO_THROW(train(config));
  EXPECT_FALSE(files_of(old_run) == old_files) << "the resume ran nothing";
  EXPECT_TRUE(recorded_fingerprints(old_run).empty());
  for (size_t i = 0; i < inputs.size(); ++i) fs::atomic_write_file(inputs[i].file, originals[i]);
}

// An input option of a trainer's Config given relative to the working directory, and its key in
// config.json.
template <typename Config>
struct RelativeInput {
  std::string Config::*member;
  const char* key;
};

// `config`, its inputs relative to `dir` and started from there, stopped after one step: its
// config.json records each input from the root. Resumed from "/" with the recorded paths (as a
// bare --resume takes them), it reads the same files and goes on to its end.
template <typename Config, typename Result>
void expect_inputs_recorded_from_the_root(Result (*train)(const Config&), Config config,
                                          const std::string& dir,
                                          const std::vector<RelativeInput<Config>>& inputs) {
  SCOPED_TRACE(config.name);
  config.resume = false;
  config.stop_after = 1;
  std::string cwd;
  rlft::testing::in_directory(dir, [&] {
    cwd = std::filesystem::current_path().string();
    train(config);
  });
  const std::string run = config.out_dir + "/" + config.name;
  const json::Value recorded = json::parse(fs::read_file(run + "/config.json"));
  config.resume = true;
  config.stop_after = 0;
  for (const RelativeInput<Config>& in : inputs) {
    SCOPED_TRACE(in.key);
    ASSERT_NE((config.*in.member).front(), '/');
    EXPECT_EQ(recorded.at(in.key).as_string(), cwd + "/" + config.*in.member);
    config.*in.member = recorded.at(in.key).as_string();
  }
  const std::map<std::string, std::string> files = files_of(run);
  rlft::testing::in_directory("/", [&] { EXPECT_NO_THROW(train(config)); });
  EXPECT_FALSE(files_of(run) == files) << "the resume ran nothing";
}

// `config` stopped after one step; then, for each of the run's checkpoint `files`, a resume with
// that file's tokenizer changed (the same number of other symbols: every tensor still fits) is
// refused naming the file and the field, the run's files untouched; with the file as it was, the
// run resumes to its end.
template <typename Config, typename Result>
void expect_foreign_tokenizer_refused(Result (*train)(const Config&), Config config,
                                      const std::vector<std::string>& files) {
  SCOPED_TRACE(config.name);
  config.resume = false;
  config.stop_after = 1;
  train(config);
  config.resume = true;
  config.stop_after = 0;
  const std::string run = config.out_dir + "/" + config.name;
  const std::map<std::string, std::string> before = files_of(run);
  for (const std::string& file : files) {
    SCOPED_TRACE(file);
    const std::string path = run + "/" + file;
    Metadata meta;
    const NamedTensors tensors = load_tensors(path, &meta);
    json::Value tok = json::parse(meta.at("tokenizer"));
    std::string symbols = tok.at("symbols").as_string();
    ASSERT_LT(symbols.back(), '~');
    ++symbols.back();  // still distinct and in code-point order
    tok.set("symbols", symbols);
    meta["tokenizer"] = tok.dump();
    save_tensors(path, tensors, meta);
    const std::map<std::string, std::string> edited = files_of(run);
    const std::string e = error_of([&] { train(config); });
    EXPECT_EQ(
        e.rfind(path + ": tokenizer field 'symbols' is " + json::Value(symbols).dump() + " but ",
                0),
        0u)
        << e;
    EXPECT_TRUE(files_of(run) == edited) << "a refused resume changed the run's files";
    fs::atomic_write_file(path, before.at(file));
  }
  train(config);
  EXPECT_FALSE(files_of(run) == before) << "the resume ran nothing";
}

// Two tiny reviews SFT runs (seeds 0 and 1: the same model and tokenizer, other weights), two
// reward models on them, two tiny arith SFT runs, and preference pairs of the reviews task in
// two orders; each test trains its runs on copies, so that changing them is its own business.
class ResumeInputs : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(rlft::testing::temp_dir("resume_inputs"));
    const TaskConfig reviews = rlft::testing::tiny_reviews(1234, 4);
    std::vector<PreferencePair> pairs = rlft::testing::example_pairs(reviews, 24);
    write_preferences(*dir_ + "/prefs.jsonl", pairs);
    std::reverse(pairs.begin(), pairs.end());
    write_preferences(*dir_ + "/prefs-reordered.jsonl", pairs);
    TaskConfig arith;
    arith.train_size = 400;
    arith.eval_size = 8;
    for (uint64_t seed : {0, 1}) {
      const std::string s = std::to_string(seed);
      SFTConfig c = rlft::testing::tiny_sft_config(*dir_, "sft" + s, 128, reviews);
      c.seed = seed;
      c.eval_examples = 4;
      train_sft(c);
      RewardModelConfig rm = rlft::testing::tiny_reward_model_config(
          *dir_, "rm" + s, *dir_ + "/sft" + s, *dir_ + "/prefs.jsonl");
      rm.seed = seed;
      train_reward_model(rm);
      c = rlft::testing::tiny_sft_config(*dir_, "arith" + s, 32, arith);
      c.seed = seed;
      train_sft(c);
    }
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }

  static std::string checkpoint_of(const std::string& run) {
    return fs::read_file(*dir_ + "/" + run + "/checkpoint.safetensors");
  }
  // A copy of `run`'s checkpoint as the run directory <test>-<flag word>, given to `flag`; its
  // other bytes are `other_run`'s checkpoint.
  static Input run_copy(const std::string& test, const std::string& flag, const std::string& run,
                        const std::string& other_run) {
    const std::string path = *dir_ + "/" + test + "-" + flag.substr(2);
    std::filesystem::create_directories(path);
    fs::atomic_write_file(path + "/checkpoint.safetensors", checkpoint_of(run));
    return {flag, path, path + "/checkpoint.safetensors", checkpoint_of(other_run)};
  }
  // The same, given as the .safetensors file itself.
  static Input file_copy(const std::string& test, const std::string& flag, const std::string& run,
                         const std::string& other_run) {
    const std::string path = *dir_ + "/" + test + "-" + flag.substr(2) + ".safetensors";
    fs::atomic_write_file(path, checkpoint_of(run));
    return {flag, path, path, checkpoint_of(other_run)};
  }
  // A copy of the pairs, whose other bytes are the same pairs in the reverse order.
  static Input prefs_copy(const std::string& test) {
    const std::string path = *dir_ + "/" + test + "-prefs.jsonl";
    fs::atomic_write_file(path, fs::read_file(*dir_ + "/prefs.jsonl"));
    return {"--prefs", path, path, fs::read_file(*dir_ + "/prefs-reordered.jsonl")};
  }
  template <typename Config>
  static Config config(const std::string& name) {
    return rlft::testing::config_at<Config>(*dir_, name);
  }
  // Each trainer's tiny run at <dir>/<name> on its inputs: DPO and the reward model one epoch of
  // batch 8, PPO-RLHF and RRHF (scored by a reward model) and group RL two steps of a few short
  // samples; evaluated only at the start and the end.
  template <typename Config>  // from `init`, evaluated on one sample
  static Config run_from(const std::string& name, const std::string& init) {
    Config c = config<Config>(name);
    c.init = init;
    c.eval_every = 0;
    c.eval_samples = 1;
    return c;
  }
  static DPOConfig dpo_config(const std::string& name, const std::string& init,
                              const std::string& prefs) {
    DPOConfig c = run_from<DPOConfig>(name, init);
    c.batch = 8;
    c.epochs = 1;
    c.prefs = prefs;
    return c;
  }
  static RewardModelConfig reward_model_config(const std::string& name, const std::string& init,
                                               const std::string& prefs) {
    RewardModelConfig c = rlft::testing::tiny_reward_model_config(*dir_, name, init, prefs);
    c.batch = 8;
    c.epochs = 1;
    return c;
  }
  template <typename Config>  // PPORLHFConfig or RRHFConfig
  static Config scored_config(const std::string& name, const std::string& init,
                              const std::string& reward_model) {
    Config c = run_from<Config>(name, init);
    c.reward_model = reward_model;
    c.steps = 2;
    if constexpr (std::is_same_v<Config, PPORLHFConfig>) {
      c.batch = 2;
      c.ppo_epochs = 1;
      c.minibatches = 1;
      c.max_new_tokens = 6;
    } else {
      c.prompts_per_step = 2;
      c.k = 2;
    }
    return c;
  }
  static GroupRLConfig group_rl_config(const std::string& algo, const std::string& name,
                                       const std::string& init) {
    GroupRLConfig c = group_rl_defaults(algo);
    c.init = init;
    c.train_prompts = 8;
    c.prompts = 2;
    c.group_size = 4;
    c.steps = 2;
    c.max_new_tokens = 4;
    c.max_extra_rounds = 1;
    c.eval_prompts = 0;
    c.out_dir = *dir_;
    c.name = name;
    c.quiet = true;
    return c;
  }
  static std::string* dir_;
};
std::string* ResumeInputs::dir_ = nullptr;

}  // namespace

// Each trainer records its --init, --prefs and --reward-model from the root: a run started with
// relative paths resumes from another working directory.
TEST_F(ResumeInputs, InputsAreRecordedFromTheRootAndReadFromAnyDirectory) {
  expect_inputs_recorded_from_the_root(train_dpo, dpo_config("relative-dpo", "sft0", "prefs.jsonl"),
                                       *dir_,
                                       {{&DPOConfig::prefs, "prefs"}, {&DPOConfig::init, "init"}});
  expect_inputs_recorded_from_the_root(
      train_reward_model, reward_model_config("relative-rm", "sft0", "prefs.jsonl"), *dir_,
      {{&RewardModelConfig::prefs, "prefs"}, {&RewardModelConfig::init, "init"}});
  expect_inputs_recorded_from_the_root(
      train_ppo_rlhf, scored_config<PPORLHFConfig>("relative-ppo", "sft0", "rm0"), *dir_,
      {{&PPORLHFConfig::init, "init"}, {&PPORLHFConfig::reward_model, "reward_model"}});
  expect_inputs_recorded_from_the_root(
      train_rrhf, scored_config<RRHFConfig>("relative-rrhf", "sft0", "rm0"), *dir_,
      {{&RRHFConfig::init, "init"}, {&RRHFConfig::reward_model, "reward_model"}});
  expect_inputs_recorded_from_the_root(train_group_rl,
                                       group_rl_config("grpo", "relative-grpo", "arith0"), *dir_,
                                       {{&GroupRLConfig::init, "init"}});
}

// Each trainer's --resume refuses a checkpoint whose tokenizer is not its --init run's (the
// reward model's and PPO's critic: with their heads), before anything of the run changes.
TEST_F(ResumeInputs, ACheckpointOfAnotherTokenizerIsRefused) {
  expect_foreign_tokenizer_refused(
      train_reward_model,
      reward_model_config("foreign-rm", *dir_ + "/sft0", *dir_ + "/prefs.jsonl"),
      {"checkpoint.safetensors"});
  expect_foreign_tokenizer_refused(
      train_ppo_rlhf, scored_config<PPORLHFConfig>("foreign-ppo", *dir_ + "/sft0", *dir_ + "/rm0"),
      {"checkpoint.safetensors", "critic.safetensors"});
  expect_foreign_tokenizer_refused(
      train_rrhf, scored_config<RRHFConfig>("foreign-rrhf", *dir_ + "/sft0", *dir_ + "/rm0"),
      {"checkpoint.safetensors"});
  expect_foreign_tokenizer_refused(train_group_rl,
                                   group_rl_config("grpo", "foreign-grpo", *dir_ + "/arith0"),
                                   {"checkpoint.safetensors"});
}

TEST_F(ResumeInputs, DPOOnAChangedInitOrPreferenceFileIsRefused) {
  const Input prefs = prefs_copy("dpo"), init = run_copy("dpo", "--init", "sft0", "sft1");
  DPOConfig c = dpo_config("dpo", init.path, prefs.path);
  c.log_every = 1;
  expect_changed_inputs_refused(train_dpo, c, {prefs, init});
}

TEST_F(ResumeInputs, RewardModelOnAChangedInitOrPreferenceFileIsRefused) {
  const Input prefs = prefs_copy("rm"), init = run_copy("rm", "--init", "sft0", "sft1");
  RewardModelConfig c = rlft::testing::tiny_reward_model_config(*dir_, "rm", init.path, prefs.path);
  expect_changed_inputs_refused(train_reward_model, c, {prefs, init});
}

TEST_F(ResumeInputs, PPORLHFOnAChangedInitOrRewardModelIsRefused) {
  const Input init = run_copy("ppo", "--init", "sft0", "sft1"),
              rm = file_copy("ppo", "--reward-model", "rm0", "rm1");
  PPORLHFConfig c = scored_config<PPORLHFConfig>("ppo", init.path, rm.path);
  expect_changed_inputs_refused(train_ppo_rlhf, c, {init, rm});
}

TEST_F(ResumeInputs, RRHFOnAChangedInitOrRewardModelIsRefused) {
  const Input init = run_copy("rrhf", "--init", "sft0", "sft1"),
              rm = run_copy("rrhf", "--reward-model", "rm0", "rm1");
  RRHFConfig c = scored_config<RRHFConfig>("rrhf", init.path, rm.path);
  c.log_every = 1;
  expect_changed_inputs_refused(train_rrhf, c, {init, rm});
  // Scored by the ground truth, the run reads no reward model: none is recorded or checked.
  c.name = "rrhf-truth";
  c.scorer = "ground_truth";
  c.reward_model = "";
  expect_changed_inputs_refused(train_rrhf, c, {init});
}

TEST_F(ResumeInputs, GroupRLOnAChangedInitIsRefused) {
  for (const std::string algo : {"grpo", "gspo", "dapo"}) {
    SCOPED_TRACE(algo);
    const Input init = run_copy(algo, "--init", "arith0", "arith1");
    GroupRLConfig c = group_rl_config(algo, algo, init.path);
    expect_changed_inputs_refused(train_group_rl, c, {init});
  }
}
