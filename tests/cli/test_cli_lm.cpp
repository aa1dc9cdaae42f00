// `rlft lm pretrain|sft|sample|eval|prefs|rm|dpo` on bad input: one line naming what is wrong,
// exit status 2, and an earlier run of the same name left as it was.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>

#include "cli/cli_util.h"

namespace {

namespace fsys = std::filesystem;
using namespace rlft::testing::cli;  // run, expect_error, slurp, …

// A reviews SFT run of two steps (a fraction of a second), pairs in the task's alphabet, and a
// DPO and a reward-model run trained on them: the runs the commands below act on.
class CliLm : public ScratchSuite<CliLm> {
 protected:
  static void SetUpTestSuite() {
    dir_ = new fsys::path(scratch_dir("lm"));
    const std::string d = dir_->string();
    ASSERT_EQ(run(tiny_sft_args(4) + " --steps 2 --out-dir " + d + " --name sft").status, 0);
    write("good.jsonl", plot_pairs({" great.", " superb.", " fine.", " good."}));
    ASSERT_EQ(run(dpo_args("good.jsonl", "dpo")).status, 0);
    ASSERT_EQ(run("lm rm --prefs " + d + "/good.jsonl --init " + d + "/sft --batch 2 --epochs 1 " +
                  "--quiet --out-dir " + d + " --name rm")
                  .status,
              0);
  }
  static std::string dpo_args(const std::string& prefs, const std::string& name,
                              const std::string& extra = "") {
    return "lm dpo --prefs " + path(prefs) + " --init " + path("sft") +
           " --batch 2 --epochs 1 --eval-samples 1 --quiet --out-dir " + dir_->string() +
           " --name " + name + " " + extra;
  }
};

// lm foo names every subcommand of rlft lm, not only the four of cmd_lm.cpp.
TEST(CliLmOptions, UnknownSubcommandListsThemAll) {
  const Outcome o = run("lm foo");
  EXPECT_EQ(o.status, 2);
  const size_t from = o.err.find("(expected "), to = o.err.rfind(')');
  ASSERT_TRUE(from != std::string::npos && to != std::string::npos) << o.err;
  std::string list = o.err.substr(from + 10, to - from - 10);
  list.replace(list.rfind(" or "), 4, ", ");
  std::set<std::string> named;
  for (size_t at = 0; at <= list.size();) {
    const size_t comma = std::min(list.find(", ", at), list.size());
    named.insert(list.substr(at, comma - at));
    at = comma + 2;
  }
  EXPECT_EQ(named, (std::set<std::string>{"pretrain", "sft", "sample", "eval", "prefs", "rm", "dpo",
                                          "rrhf", "ppo", "grpo", "dr-grpo", "dapo", "gspo",
                                          "gspo-token", "dcpo", "rloo"}))
      << o.err;
}

// Every numeric option is checked before anything is read or written, and the error names the
// option as typed (the inputs named here need not exist: the check comes first).
TEST(CliLmOptions, OutOfRangeValuesNameTheOption) {
  const fsys::path dir = scratch_dir("lm_options");
  const std::string out = " --quiet --out-dir " + dir.string() + " --name x";
  const std::string sft = "lm sft --model nano --steps 2" + out;
  const std::string dpo = "lm dpo --prefs nope.jsonl --init nope" + out;
  const std::string rm = "lm rm --prefs nope.jsonl --init nope" + out;
  const std::string prefs = "lm prefs --run nope --out " + (dir / "p.jsonl").string();
  const struct {
    std::string args, expect;
  } cases[] = {
      {sft + " --batch 0", "--batch must be in [1, 1048576], got 0"},
      {sft + " --task arith --data x.jsonl",
       "--data is for --task text or jsonl; --task arith generates its own examples"},
      {sft + " --batch 4294967297", "--batch must be in [1, 1048576], got 4294967297"},
      {sft + " --steps 0", "--steps must be positive"},
      {sft + " --lr nan", "--lr must be a positive number"},
      {sft + " --weight-decay -1", "--weight-decay must be a number >= 0"},
      {sft + " --beta1 1", "--beta1 must be in [0, 1)"},
      {sft + " --beta2 nan", "--beta2 must be in [0, 1)"},
      {sft + " --grad-clip inf", "--grad-clip must be a number >= 0"},
      {sft + " --dropout 1", "--dropout must be in [0, 1)"},
      {sft + " --block-size -4", "--block-size must be >= 0 (0: the model's)"},
      {sft + " --n-head -1", "--n-head must be >= 0"},
      {sft + " --eval-every 0", "--eval-every must be positive"},
      {sft + " --checkpoint-every -1",
       "--checkpoint-every must be >= 0 (0: only at --stop-after and the end), got -1"},
      {sft + " --log-every -1", "--log-every must be positive"},
      {dpo + " --eval-fraction -1", "--eval-fraction must be in [0, 1), got -1"},
      {dpo + " --eval-fraction nan", "--eval-fraction must be in [0, 1), got nan"},
      {dpo + " --eval-samples 0", "--eval-samples must be in [1, 1048576], got 0"},
      {dpo + " --eval-samples -1", "--eval-samples must be in [1, 1048576], got -1"},
      {dpo + " --eval-samples 2147483648",
       "--eval-samples must be in [1, 1048576], got 2147483648"},
      {dpo + " --max-steps -1", "--max-steps must be >= 0"},
      {dpo + " --grad-clip -1", "--grad-clip must be a number >= 0"},
      {dpo + " --lr 0", "--lr must be a positive number"},
      {dpo + " --beta nan", "--beta must be a positive number"},
      {dpo + " --eval-every -1", "--eval-every must be >= 0"},
      {dpo + " --label-smoothing 0.1", "--label-smoothing applies to --loss cdpo only"},
      {dpo + " --loss cdpo --label-smoothing 0.5", "--label-smoothing must be in [0, 0.5)"},
      {rm + " --margin nan", "--margin must be a finite number"},
      {rm + " --center-coef nan", "--center-coef must be a number >= 0"},
      {rm + " --center-coef -1", "--center-coef must be a number >= 0"},
      {rm + " --grad-clip -1", "--grad-clip must be a number >= 0"},
      {rm + " --lr inf", "--lr must be a positive number"},
      {rm + " --weight-decay nan", "--weight-decay must be a number >= 0"},
      {rm + " --eval-fraction 1", "--eval-fraction must be in [0, 1)"},
      {rm + " --lr-schedule steep", "steep"},
      {prefs + " --pairs 0", "--pairs must be in [1, 1048576], got 0"},
      {prefs + " --pairs 4294967296", "--pairs must be in [1, 1048576], got 4294967296"},
      {prefs + " --min-gap nan", "--min-gap must be in [0, 1)"},
      {prefs + " --min-gap -1", "--min-gap must be in [0, 1)"},
      {prefs + " --min-gap 2", "--min-gap must be in [0, 1)"},
      {prefs + " --temperature 0", "--temperature must be a positive number"},
      {"lm prefs --run nope --out " + dir.string(), "is a directory"},
      {"lm prefs --run nope --out " + (dir / "missing" / "p.jsonl").string(),
       "--out " + (dir / "missing" / "p.jsonl").string() + ": no directory"},
      {"lm sft --task text --data " + dir.string() + out, "text: --data: cannot read"},
      {"lm eval --run nope --max-new-tokens -1", "--max-new-tokens must be >= 0"},
      {"lm eval --run nope --temperature nan", "--temperature must be a positive number"},
      {"lm eval --run nope --top-p 0", "--top-p must be in (0, 1]"},
      {"lm eval --run nope --show -1", "--show must be >= 0"},
      {"lm sample --run nope --max-new-tokens 0", "--max-new-tokens must be positive"},
      {"lm sample --run nope --top-k -1", "--top-k must be >= 0"},
      // Counts a typo can make huge (memory filled before any output).
      {"lm sample --run nope --n 0", "rlft lm sample: --n must be in [1, 1048576], got 0"},
      {"lm sample --run nope --n 2147483648", "--n must be in [1, 1048576], got 2147483648"},
      {"lm eval --run nope --samples-per-prompt 2147483648",
       "rlft lm eval: --samples-per-prompt must be in [1, 1048576], got 2147483648"},
  };
  for (const auto& c : cases) expect_error(c.args, c.expect);
  EXPECT_FALSE(fsys::exists(dir / "x")) << "no run directory for a refused command";
}

// A context too small for the validation prompts is refused before the run writes anything
// (it used to fail at the first validation, after the run had replaced an earlier one).
TEST(CliLmOptions, ContextTooSmallForValidationPromptsIsRefusedUpFront) {
  const fsys::path dir = scratch_dir("lm_context");
  expect_error(
      "lm sft --model nano --block-size 4 --steps 2 --batch 2 --eval-generate 2 --quiet "
      "--out-dir " +
          dir.string() + " --name x",
      "--eval-generate: a prompt of 7 tokens (BOS included) leaves no room");
  EXPECT_FALSE(fsys::exists(dir / "x"));
}

// A preference file the model cannot read fails before the run's first write: the earlier run
// of that name keeps its checkpoint, metrics and config, and the error names file and line.
TEST_F(CliLm, BadPreferencesLeaveTheEarlierRunAsItWas) {
  const std::string good = slurp(*dir_ / "good.jsonl");
  write("unknown_char.jsonl",
        good + R"({"prompt":"review: the plot was","chosen":" GOOD!","rejected":" dull."})" + "\n");
  write("long.jsonl", good + R"({"prompt":"review: the plot was","chosen":")" +
                          std::string(500, 'a') + R"(","rejected":" dull."})" + "\n");
  write("empty_chosen.jsonl",
        good + R"({"prompt":"review: the plot was","chosen":"","rejected":" dull."})" + "\n");
  write("same.jsonl",
        good + R"({"prompt":"review: the plot was","chosen":" dull.","rejected":" dull."})" + "\n");
  write("score.jsonl",
        good + R"({"prompt":"a","chosen":"b","rejected":"c","chosen_score":7})" + "\n");
  fsys::create_directories(*dir_ / "adir.jsonl");
  for (const std::string run_name : {"dpo", "rm"}) {
    const auto before = snapshot(*dir_ / run_name);
    ASSERT_TRUE(before.count("checkpoint.safetensors") && before.count("metrics.jsonl"));
    const std::string unknown = path("unknown_char.jsonl") +
                                ":5: \"chosen\": tokenizer: unknown "
                                "character 'G'";
    const std::string too_long =
        path("long.jsonl") +
        ":5: prompt + \"chosen\" is 522 tokens (BOS and EOS included), more "
        "than the model's context of 64";
    const struct {
      std::string file, expect;
    } cases[] = {
        {"unknown_char.jsonl", unknown},
        {"long.jsonl", too_long},
        {"empty_chosen.jsonl", path("empty_chosen.jsonl") + ":5: \"chosen\" is empty"},
        {"same.jsonl", path("same.jsonl") + ":5: \"chosen\" and \"rejected\" are the same text"},
        {"score.jsonl",
         path("score.jsonl") + ":5: \"chosen_score\" must be a probability in [0, 1], got 7"},
        {"adir.jsonl", "adir.jsonl"},
    };
    for (const auto& c : cases) {
      const std::string args = run_name == "dpo"
                                   ? dpo_args(c.file, "dpo")
                                   : "lm rm --prefs " + path(c.file) + " --init " + path("sft") +
                                         " --batch 2 --epochs 1 --quiet --out-dir " +
                                         dir_->string() + " --name rm";
      expect_error(args, c.expect);
      EXPECT_EQ(snapshot(*dir_ / run_name), before) << run_name << " changed by: " << args;
    }
  }
  // rm --evaluate reads the pairs the same way.
  expect_error("lm rm --evaluate " + path("rm") + " --prefs " + path("unknown_char.jsonl"),
               path("unknown_char.jsonl") + ":5: \"chosen\": tokenizer");
}

// A reward model is not a policy: every command that loads a policy refuses one, naming it; and
// rm --evaluate refuses a policy.
TEST_F(CliLm, RewardModelIsRefusedAsAPolicy) {
  const std::string rm_ckpt = path("rm") + "/checkpoint.safetensors";
  const std::string refusal =
      rm_ckpt + ": a reward model (its checkpoint has a reward head), not a policy";
  expect_error("lm dpo --prefs " + path("good.jsonl") + " --init " + path("rm") +
                   " --quiet --out-dir " + dir_->string() + " --name dpo-rm",
               refusal);
  EXPECT_FALSE(fsys::exists(*dir_ / "dpo-rm"));
  expect_error("lm prefs --run " + path("rm") + " --out " + path("p.jsonl"), refusal);
  EXPECT_FALSE(fsys::exists(*dir_ / "p.jsonl"));
  expect_error("lm sample --run " + path("rm"), refusal);
  expect_error("lm eval --run " + path("rm"), refusal);
  expect_error("lm rm --prefs " + path("good.jsonl") + " --init " + path("rm") +
                   " --quiet --out-dir " + dir_->string() + " --name rm2",
               refusal);
  expect_error("lm sft --task reviews --init-from " + path("rm") + " --quiet --out-dir " +
                   dir_->string() + " --name sft2",
               refusal);
  expect_error("lm rm --evaluate " + path("sft") + " --prefs " + path("good.jsonl"),
               path("sft") + "/checkpoint.safetensors: not a reward model");
}

// --init-from a run of another size names the checkpoint and both models.
// A run evaluated on another task whose text its tokenizer cannot encode: the error names both
// tasks, not only the missing character.
TEST_F(CliLm, EvalOnAnotherTaskNamesBothTasks) {
  expect_error("lm eval --run " + path("sft") + " --task arith",
               path("sft") +
                   ": a run of task 'reviews' cannot be evaluated on --task arith: its "
                   "tokenizer does not cover that task's text (tokenizer: unknown character");
}

// Four pairs at the default --eval-fraction 0.1 hold out none: the summaries say so instead of
// an accuracy of 0.000 over no pair.
TEST_F(CliLm, NoHeldOutPairsIsSaidNotScored) {
  const Outcome rm =
      run("lm rm --prefs " + path("good.jsonl") + " --init " + path("sft") +
          " --batch 2 --epochs 1 --quiet --out-dir " + dir_->string() + " --name rm-none");
  EXPECT_EQ(rm.status, 0) << rm.err;
  EXPECT_NE(rm.out.find("done: no held-out pairs"), std::string::npos) << rm.out;
  const Outcome dpo = run(dpo_args("good.jsonl", "dpo-none"));
  EXPECT_EQ(dpo.status, 0) << dpo.err;
  EXPECT_NE(dpo.out.find(", no held-out pairs\n"), std::string::npos) << dpo.out;
  EXPECT_EQ(dpo.out.find("held-out preference accuracy"), std::string::npos) << dpo.out;
}

TEST_F(CliLm, InitFromAnotherModelNamesBothConfigs) {
  expect_error(
      "lm sft --task reviews --model micro --init-from " + path("sft") + " --quiet --out-dir " +
          dir_->string() + " --name sft-micro",
      path("sft") +
          "/checkpoint.safetensors: its model (n_layer 1, n_head 2, n_embd 32, block_size "
          "64, vocab_size 32, tie_weights true) differs from this run's (n_layer 4, n_head "
          "4, n_embd 128, block_size 128, vocab_size 32, tie_weights true)");
  EXPECT_FALSE(fsys::exists(*dir_ / "sft-micro"));
}

// --stop-after is the invocation's own, never taken from the run: a run stopped after 1 of its 3
// steps and resumed without it runs its 2 remaining steps to the end.
TEST_F(CliLm, AResumeWithoutStopAfterRunsToTheEnd) {
  const std::string sft =
      tiny_sft_args(4) + " --steps 3 --out-dir " + dir_->string() + " --name sft-stop";
  const Outcome stopped = run(sft + " --stop-after 1 --checkpoint-every 1");
  ASSERT_EQ(stopped.status, 0) << stopped.err;
  const Outcome resumed =
      run("lm sft --quiet --out-dir " + dir_->string() + " --name sft-stop --resume");
  EXPECT_EQ(resumed.status, 0) << resumed.err;
  EXPECT_EQ(resumed.out.rfind("done: 2 steps in ", 0), 0u) << resumed.out;
  EXPECT_NE(resumed.out.find("(resumed: the run is at step 3)"), std::string::npos) << resumed.out;
}

// --resume continues with the settings the run recorded: those left out are taken, those written
// must match (the budget may grow).
TEST_F(CliLm, ResumeComparesTheSettings) {
  const Outcome stopped = run(dpo_args("good.jsonl", "dpo-resume", "--stop-after 1"));
  ASSERT_EQ(stopped.status, 0);
  // No made-up final numbers when the run stops before its final evaluation.
  EXPECT_NE(stopped.out.find("done: at step 1, no final evaluation in this invocation"),
            std::string::npos)
      << stopped.out;
  const auto before = snapshot(*dir_ / "dpo-resume");
  expect_error(dpo_args("good.jsonl", "dpo-resume", "--resume --beta 0.5"),
               "--resume: setting 'beta' is 0.5 but the run at " + path("dpo-resume") +
                   " was started with 0.1");
  expect_error(dpo_args("good.jsonl", "dpo-resume", "--resume --lr 0.01"), "setting 'lr'");
  EXPECT_EQ(snapshot(*dir_ / "dpo-resume"), before);
  // --name and --resume are enough: the options left out take the run's recorded values.
  const auto settings = recorded_settings(*dir_ / "dpo-resume", {"resume"});
  const Outcome bare = run("lm dpo --quiet --out-dir " + dir_->string() +
                           " --name dpo-resume --resume --stop-after 1");
  EXPECT_EQ(bare.status, 0) << bare.err;
  EXPECT_EQ(bare.out.rfind("done: ", 0), 0u) << bare.out;
  // A KL that rounds to zero prints as 0.00, never -0.00.
  EXPECT_EQ(bare.out.find("-0.00"), std::string::npos) << bare.out;
  EXPECT_EQ(recorded_settings(*dir_ / "dpo-resume", {"resume"}), settings);
  const Outcome longer = run(dpo_args("good.jsonl", "dpo-resume", "--resume --epochs 2"));
  EXPECT_EQ(longer.status, 0) << longer.err;

  const std::string sft = tiny_sft_args(4) + " --out-dir " + dir_->string() + " --name sft-resume";
  ASSERT_EQ(run(sft + " --steps 2").status, 0);
  expect_error(sft + " --steps 2 --resume --lr 0.1", "--resume: setting 'lr' is 0.1");
  expect_error(sft + " --steps 2 --resume --batch 8", "--resume: setting 'batch' is 8");
  const auto settings_sft = recorded_settings(*dir_ / "sft-resume", {"resume", "steps"});
  const Outcome more =
      run("lm sft --quiet --out-dir " + dir_->string() + " --name sft-resume --resume --steps 3");
  EXPECT_EQ(more.status, 0) << more.err;
  EXPECT_NE(more.out.find("validation loss"), std::string::npos) << more.out;
  // The invocation's own count and time, and where the run now is.
  EXPECT_EQ(more.out.rfind("done: 1 step in ", 0), 0u) << more.out;
  EXPECT_NE(more.out.find("(resumed: the run is at step 3)"), std::string::npos) << more.out;
  EXPECT_EQ(recorded_settings(*dir_ / "sft-resume", {"resume", "steps"}), settings_sft);
  // Resuming a finished run runs nothing and says so, without a validation loss of 0.
  const Outcome again = run(sft + " --steps 3 --resume");
  EXPECT_EQ(again.status, 0) << again.err;
  EXPECT_NE(again.out.find("done: at step 3, no validation in this invocation"), std::string::npos)
      << again.out;
}

// The audit's case: a DPO run stopped, then its SFT run trained again (another seed). Its
// --resume would have trained against another reference (its KL to it jumped); it is refused,
// naming --init and both fingerprints, and the run is left as it was. The recorded fingerprint
// is no option: the bare --resume takes the run's settings without a word about it.
TEST_F(CliLm, ResumeAfterTheInitRunChangedIsRefused) {
  const std::string d = dir_->string();
  const std::string sft = tiny_sft_args(4) + " --steps 2 --out-dir " + d + " --name sft-changed";
  ASSERT_EQ(run(sft).status, 0);
  const Outcome stopped =
      run("lm dpo --prefs " + path("good.jsonl") + " --init " + path("sft-changed") +
          " --batch 2 --epochs 1 --eval-samples 1 --checkpoint-every 1 "
          "--stop-after 1 --quiet --out-dir " +
          d + " --name dpo-changed");
  ASSERT_EQ(stopped.status, 0) << stopped.err;
  const std::string recorded = rlft::json::parse(slurp(*dir_ / "dpo-changed" / "config.json"))
                                   .at("init_fingerprint")
                                   .as_string();
  EXPECT_EQ(recorded.size(), 16u);
  ASSERT_EQ(run(sft + " --seed 1").status, 0);
  const auto before = snapshot(*dir_ / "dpo-changed");
  const std::string resume = "lm dpo --quiet --out-dir " + d + " --name dpo-changed --resume";
  expect_error(resume,
               "--init " + path("sft-changed") + ": changed since this run started: fingerprint ");
  expect_error(resume, ", recorded " + recorded);
  EXPECT_EQ(snapshot(*dir_ / "dpo-changed"), before);
}

// A DPO run started with relative --prefs and --init records them from the root, so a bare
// --resume from another directory (one holding another file of the same name) reads the run's
// own files and goes on; a change to the recorded file is refused naming it by that path, the
// run left as it was. A run recorded with the paths as given (before 2026-11-27) resumes from
// its directory with them, its record unchanged.
TEST_F(CliLm, DPOResumedFromAnotherDirectoryReadsTheRecordedFiles) {
  const std::string d = dir_->string();
  write("here.jsonl", plot_pairs({" great.", " superb.", " fine.", " good."}));
  std::string here;  // the suite's directory as the working directory reads it
  Outcome stopped;
  rlft::testing::in_directory(*dir_, [&] {
    here = fsys::current_path().string();
    stopped =
        run("lm dpo --prefs here.jsonl --init sft --batch 2 --epochs 2 --eval-samples 1 "
            "--quiet --stop-after 1 --out-dir " +
            d + " --name dpo-here");
  });
  ASSERT_EQ(stopped.status, 0) << stopped.err;
  const fsys::path run_dir = *dir_ / "dpo-here";
  const auto recorded = [&](const char* key) {
    return rlft::json::parse(slurp(run_dir / "config.json")).at(key).as_string();
  };
  EXPECT_EQ(recorded("prefs"), here + "/here.jsonl");
  EXPECT_EQ(recorded("init"), here + "/sft");

  const fsys::path elsewhere = scratch_dir("lm-elsewhere");
  std::ofstream(elsewhere / "here.jsonl", std::ios::binary) << plot_pairs({" fine."});
  const std::string resume =
      "lm dpo --quiet --stop-after 1 --out-dir " + d + " --name dpo-here --resume";
  Outcome resumed;
  rlft::testing::in_directory(elsewhere, [&] { resumed = run(resume); });
  EXPECT_EQ(resumed.status, 0) << resumed.err;
  EXPECT_NE(resumed.out.find("done: "), std::string::npos) << resumed.out;
  EXPECT_EQ(recorded("prefs"), here + "/here.jsonl");

  write("here.jsonl", plot_pairs({" great.", " superb.", " fine.", " good.", " neat."}));
  const auto before = snapshot(run_dir);
  rlft::testing::in_directory(elsewhere, [&] {
    expect_error(resume, "--prefs " + here + "/here.jsonl: changed since this run started");
  });
  EXPECT_EQ(snapshot(run_dir), before);

  // The record of a run from before 2026-11-27: the paths as given, resumed from their directory.
  write("here.jsonl", plot_pairs({" great.", " superb.", " fine.", " good."}));
  rlft::json::Value old = rlft::json::parse(slurp(run_dir / "config.json"));
  old.set("prefs", "here.jsonl");
  old.set("init", "sft");
  std::ofstream(run_dir / "config.json", std::ios::binary) << old.dump(2) << "\n";
  // From another directory its relative path reads that directory's file: refused, and the
  // error says where the run must be resumed from.
  rlft::testing::in_directory(elsewhere, [&] {
    expect_error(resume, "--prefs here.jsonl: changed since this run started: fingerprint ");
    expect_error(resume,
                 " (the run recorded this path relative to the directory it was started in: "
                 "resume it from there)");
  });
  rlft::testing::in_directory(*dir_, [&] { resumed = run(resume); });
  EXPECT_EQ(resumed.status, 0) << resumed.err;
  EXPECT_EQ(recorded("prefs"), "here.jsonl");
  EXPECT_EQ(recorded("init"), "sft");
}

// lm prefs that gets no usable pair says which filter dropped the candidates.
TEST_F(CliLm, PrefsSaysWhatTheFiltersDropped) {
  const Outcome o =
      run("lm prefs --run " + path("sft") +
          " --min-gap 0.999 --pairs 1 --samples-per-prompt 2 --quiet --out " + path("p.jsonl"));
  EXPECT_EQ(o.status, 2) << o.out;
  EXPECT_NE(o.err.find("gave only 0 usable pairs in 5 rounds; candidate pairs dropped: "),
            std::string::npos)
      << o.err;
  EXPECT_NE(o.err.find(" closer than --min-gap 0.999"), std::string::npos) << o.err;
  EXPECT_FALSE(fsys::exists(*dir_ / "p.jsonl"));
}

}  // namespace
