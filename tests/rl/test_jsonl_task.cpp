// Tests of the jsonl task (rl/llm/tasks/jsonl.h): the prompt/response file's parser and its
// errors, the split by prompt, the exact-match verifier, the data fingerprint a run records and
// checks, and SFT then GRPO on a generated file.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <set>

#include "engine/fs.h"
#include "jsonl_data.h"
#include "models/generate.h"
#include "models/tokenizer.h"
#include "rl/llm/group_rl.h"
#include "rl/llm/lm.h"
#include "rl/llm/sft.h"
#include "rl/llm/tasks/jsonl.h"
#include "test_util.h"
#include "tiny_lm_runs.h"

using namespace rlft;
using namespace rlft::llm;
using rlft::testing::error_of;
using rlft::testing::temp_dir;

namespace {

using namespace rlft::testing::jsonl;  // line, reversals, write

std::set<std::string> prompts_of(const Task& t, Split s) {
  std::set<std::string> out;
  for (const Example& e : t.examples(s)) out.insert(e.prompt);
  return out;
}

std::string parse_error(const std::string& text) {
  return error_of([&] { parse_prompt_responses(text, "d.jsonl"); });
}

// prefix + i + suffix, appended piece by piece ("q" + std::to_string(i) prepends in place,
// where GCC 12 warns a false -Wrestrict inside libstdc++).
std::string numbered(const char* prefix, int i, const char* suffix = "") {
  std::string s = prefix;
  s += std::to_string(i);
  s += suffix;
  return s;
}

// 200 prompts "q<i>?"; every 4th has a second reference on a later line: 250 lines.
std::string two_hundred_prompts() {
  std::string text;
  for (int i = 0; i < 200; ++i) text += line(numbered("q", i, "?"), numbered("a", i));
  for (int i = 0; i < 200; i += 4) text += line(numbered("q", i, "?"), numbered("b", i));
  return text;
}

}  // namespace

// ---- the file ----------------------------------------------------------------------------------

TEST(JsonlParse, BomCrlfBlankLinesCompletionAndOtherKeys) {
  const std::string text =
      "\xEF\xBB\xBF{\"prompt\": \"2+2=\", \"response\": \"4\"}\r\n"
      "\r\n"
      "  \n"
      "{\"prompt\": \"héllo \", \"completion\": \"wörld\\n\", \"score\": 3, \"meta\": {}}\r\n"
      "{\"id\": 7, \"prompt\": \"\", \"response\": \" x<|eos|>\"}";  // no final newline
  const std::vector<PromptResponse> v = parse_prompt_responses(text, "d.jsonl");
  ASSERT_EQ(v.size(), 3u);
  EXPECT_EQ(v[0].prompt, "2+2=");
  EXPECT_EQ(v[0].response, "4");
  EXPECT_EQ(v[0].line, 1);
  EXPECT_EQ(v[1].prompt, "héllo ");
  EXPECT_EQ(v[1].response, "wörld\n");  // kept as written; the verifier trims
  EXPECT_EQ(v[1].line, 4);
  EXPECT_EQ(v[2].prompt, "");
  EXPECT_EQ(v[2].response, " x<|eos|>");
  EXPECT_EQ(v[2].line, 5);
}

TEST(JsonlParse, EachErrorNamesTheFileTheLineAndWhatIsWrong) {
  const std::string ok = line("p", "r");
  EXPECT_EQ(parse_error(ok + "hello\n"),
            "d.jsonl:2:1: expected a JSON value (object, array, string, number, true, false or "
            "null), found 'h'");
  EXPECT_EQ(parse_error(ok + ok + "[1, 2]\n"),
            "d.jsonl:3: expected an object with \"prompt\" and \"response\" (or \"completion\"), "
            "got array");
  EXPECT_EQ(parse_error("\"text\"\n"),
            "d.jsonl:1: expected an object with \"prompt\" and \"response\" (or \"completion\"), "
            "got string");
  EXPECT_EQ(parse_error(ok + "{\"response\": \"r\"}\n"), "d.jsonl:2: missing \"prompt\"");
  EXPECT_EQ(parse_error("{\"prompt\": 3, \"response\": \"r\"}"),
            "d.jsonl:1: \"prompt\" must be a string, got integer");
  EXPECT_EQ(parse_error("\r\n\r\n{\"prompt\": \"p\"}\r\n"),
            "d.jsonl:3: missing \"response\" (or \"completion\")");
  EXPECT_EQ(parse_error("{\"prompt\": \"p\", \"response\": \"r\", \"completion\": \"r\"}"),
            "d.jsonl:1: both \"response\" and \"completion\" (give one: they are the same field)");
  EXPECT_EQ(parse_error("{\"prompt\": \"p\", \"response\": null}"),
            "d.jsonl:1: \"response\" must be a string, got null");
  EXPECT_EQ(parse_error("{\"prompt\": \"p\", \"completion\": [\"r\"]}"),
            "d.jsonl:1: \"completion\" must be a string, got array");
  EXPECT_EQ(parse_error(ok + "{\"prompt\": \"p\", \"response\": \"\"}"),
            "d.jsonl:2: \"response\" is empty");
  EXPECT_EQ(parse_error("{\"prompt\": \"p\", \"completion\": \" \\n\\t\"}"),
            "d.jsonl:1: \"completion\" is only whitespace");
  EXPECT_EQ(parse_error(ok + "{\"prompt\": \"p\xFF\", \"response\": \"r\"}\n"),
            "d.jsonl:2: invalid UTF-8 (utf8: invalid lead byte 0xff at byte 13)");
  // The BOM is accepted at the start of the file only, and a line number counts the blank lines.
  EXPECT_EQ(parse_error("\n" + ok + "\xEF\xBB\xBF" + ok),
            "d.jsonl:3:1: expected a JSON value (object, array, string, number, true, false or "
            "null), found byte 0xef");
  const std::string no_examples =
      "d.jsonl: no examples (expected JSON lines like {\"prompt\": \"…\", \"response\": \"…\"})";
  EXPECT_EQ(parse_error(""), no_examples);
  EXPECT_EQ(parse_error("\xEF\xBB\xBF"), no_examples);
  EXPECT_EQ(parse_error("\n  \r\n\t\n"), no_examples);
}

TEST(JsonlTask, ReadErrorsNameTheFile) {
  const std::string dir = temp_dir("jsonl_read");
  TaskConfig c = jsonl_config(dir + "/missing.jsonl");
  EXPECT_NE(error_of([&] { make_task(c); }).find("jsonl: --data: "), std::string::npos);
  EXPECT_NE(error_of([&] { make_task(c); }).find("missing.jsonl"), std::string::npos);
  c.data = "";
  EXPECT_EQ(error_of([&] { make_task(c); }),
            "jsonl: --data FILE.jsonl is required for --task jsonl");
  fs::atomic_write_file(dir + "/bad.jsonl", line("p", "r") + "{\"prompt\": \"p\"}\n");
  c.data = dir + "/bad.jsonl";
  EXPECT_EQ(error_of([&] { make_task(c); }),
            dir + "/bad.jsonl:2: missing \"response\" (or \"completion\")");
}

// ---- splits ------------------------------------------------------------------------------------

TEST(JsonlTask, SplitsByPromptInHashOrder) {
  const std::string dir = temp_dir("jsonl_split");
  const std::string path = dir + "/d.jsonl";
  fs::atomic_write_file(path, two_hundred_prompts());
  const TaskConfig c = jsonl_config(path);
  const std::unique_ptr<Task> a = make_task(c), b = make_task(c);
  EXPECT_EQ(a->name(), "jsonl");
  // P = 200 prompts, eval_size 500: k = min(500, max(1, 200/10)) = 20 prompts each.
  const auto tr = prompts_of(*a, Split::train), va = prompts_of(*a, Split::validation),
             te = prompts_of(*a, Split::test);
  EXPECT_EQ(te.size(), 20u);
  EXPECT_EQ(va.size(), 20u);
  EXPECT_EQ(tr.size(), 160u);
  std::set<std::string> all = tr;
  all.insert(va.begin(), va.end());
  all.insert(te.begin(), te.end());
  EXPECT_EQ(all.size(), 200u);  // every prompt in exactly one split
  // Each split holds every line of its prompts (1 or 2 each), in the documented order: test the
  // 20 smallest hash_unit(seed, prompt), validation the next 20; a prompt's lines in file order.
  std::vector<std::pair<double, std::string>> order;
  for (int i = 0; i < 200; ++i) {
    const std::string p = numbered("q", i, "?");
    order.push_back({hash_unit(1234, p), p});
  }
  std::sort(order.begin(), order.end());
  size_t lines = 0;
  for (Split s : {Split::test, Split::validation, Split::train}) {
    const std::vector<Example>& ex = a->examples(s);
    lines += ex.size();
    std::vector<std::string> expected_prompts;
    for (size_t i = s == Split::test         ? 0
                    : s == Split::validation ? 20
                                             : 40;
         i < (s == Split::test         ? 20
              : s == Split::validation ? 40
                                       : 200);
         ++i)
      expected_prompts.push_back(order[i].second);
    EXPECT_EQ(a->prompts(s), expected_prompts) << split_name(s);
    for (size_t i = 0; i < ex.size(); ++i) {
      const int n = std::stoi(ex[i].prompt.substr(1));
      EXPECT_TRUE(ex[i].eos);
      EXPECT_TRUE(ex[i].response == numbered("a", n) ||
                  (n % 4 == 0 && ex[i].response == numbered("b", n)));
      if (n % 4 == 0 && ex[i].response[0] == 'a') {  // its second reference follows it
        ASSERT_LT(i + 1, ex.size());
        EXPECT_EQ(ex[i + 1].response, numbered("b", n));
      }
    }
    ASSERT_EQ(ex.size(), b->examples(s).size());  // the same seed: the same examples
    for (size_t i = 0; i < ex.size(); ++i) {
      EXPECT_EQ(ex[i].prompt, b->examples(s)[i].prompt);
      EXPECT_EQ(ex[i].response, b->examples(s)[i].response);
    }
  }
  EXPECT_EQ(lines, 250u);
  // Another data seed: another split.
  const std::unique_ptr<Task> other = make_task(jsonl_config(path, 99));
  EXPECT_NE(prompts_of(*other, Split::test), te);
  EXPECT_EQ(prompts_of(*other, Split::test).size(), 20u);
  // --eval-size below a tenth of the prompts: exactly that many prompts each.
  TaskConfig small = c;
  small.eval_size = 7;
  const std::unique_ptr<Task> s7 = make_task(small);
  EXPECT_EQ(s7->prompts(Split::test).size(), 7u);
  EXPECT_EQ(s7->prompts(Split::validation).size(), 7u);
  EXPECT_EQ(s7->prompts(Split::train).size(), 186u);
  // --train-size caps the train examples (the first ones in that order), not the others.
  TaskConfig capped = c;
  capped.train_size = 50;
  const std::unique_ptr<Task> t50 = make_task(capped);
  ASSERT_EQ(t50->examples(Split::train).size(), 50u);
  for (size_t i = 0; i < 50; ++i)
    EXPECT_EQ(t50->examples(Split::train)[i].response, a->examples(Split::train)[i].response);
  EXPECT_EQ(prompts_of(*t50, Split::test), te);
  EXPECT_EQ(t50->examples(Split::validation).size(), a->examples(Split::validation).size());
}

TEST(JsonlTask, TooFewPromptsForThreeSplitsIsAnError) {
  const std::string dir = temp_dir("jsonl_small");
  const std::string path = dir + "/d.jsonl";
  fs::atomic_write_file(path, line("x", "1") + line("y", "2") + line("x", "3"));
  EXPECT_EQ(error_of([&] { make_task(jsonl_config(path)); }),
            path +
                ": 3 examples with 2 distinct prompts; the jsonl task needs at least 3 (one each "
                "for train, validation and test)");
  fs::atomic_write_file(path, line("x", "1") + line("x", "2"));
  EXPECT_EQ(error_of([&] { make_task(jsonl_config(path)); }),
            path +
                ": 2 examples with 1 distinct prompt; the jsonl task needs at least 3 (one each "
                "for train, validation and test)");
  fs::atomic_write_file(path, line("x", "1") + line("y", "2") + line("z", "3"));
  const std::unique_ptr<Task> t = make_task(jsonl_config(path));  // 3 prompts: one each
  for (Split s : {Split::train, Split::validation, Split::test})
    EXPECT_EQ(t->examples(s).size(), 1u);
  TaskConfig c = jsonl_config(path);
  c.eval_size = 0;
  EXPECT_EQ(error_of([&] { make_task(c); }),
            "jsonl: --train-size and --eval-size must be positive, got 20000 and 0");
}

// ---- the verifier ------------------------------------------------------------------------------

TEST(JsonlTask, ScoreIsExactMatchWithAnyReferenceOfThePrompt) {
  const std::string dir = temp_dir("jsonl_score");
  const std::string path = dir + "/d.jsonl";
  fs::atomic_write_file(path, line("rev abc=", "cba") + line("name two:", " x y \n") +
                                  line("name two:", "z") + line("other", "é") + line("more", "m"));
  const std::unique_ptr<Task> t = make_task(jsonl_config(path));
  EXPECT_TRUE(t->has_verifier());
  EXPECT_EQ(t->score("rev abc=", "cba"), 1.0);
  EXPECT_EQ(t->score("rev abc=", "cba<|eos|>"), 1.0);         // one EOS stripped
  EXPECT_EQ(t->score("rev abc=", "  cba\n <|eos|>"), 1.0);    // then whitespace trimmed
  EXPECT_EQ(t->score("rev abc=", "cba<|eos|><|eos|>"), 0.0);  // only one EOS
  EXPECT_EQ(t->score("rev abc=", "cba<|eos|>x"), 0.0);        // text after the EOS
  EXPECT_EQ(t->score("rev abc=", "cb"), 0.0);
  EXPECT_EQ(t->score("rev abc=", "CBA"), 0.0);
  EXPECT_EQ(t->score("rev abc=", "c ba"), 0.0);       // inner whitespace counts
  EXPECT_EQ(t->score("name two:", "x y"), 1.0);       // the reference is trimmed too
  EXPECT_EQ(t->score("name two:", "z<|eos|>"), 1.0);  // any reference of the prompt
  EXPECT_EQ(t->score("name two:", "cba"), 0.0);       // another prompt's answer
  EXPECT_EQ(t->score("other", "é"), 1.0);
  EXPECT_EQ(error_of([&] { t->score("rev abd=", "dba"); }),
            "jsonl: prompt \"rev abd=\" is not in " + path);
  EXPECT_EQ(error_of([&] { t->score("a\n\"b\"", "x"); }),
            "jsonl: prompt \"a\\n\\\"b\\\"\" is not in " + path);
  const SampleMetrics m =
      t->sample_metrics({"rev abc=", "rev abc=", "name two:", "other"}, {"cba", "abc", "z", "e"});
  ASSERT_EQ(m.size(), 1u);
  EXPECT_DOUBLE_EQ(m.at("exact_match"), 0.5);
  EXPECT_EQ(t->sample_metrics({}, {}).at("exact_match"), 0.0);  // non-empty: SFT reports it
  EXPECT_EQ(error_of([&] { t->sample_metrics({"other"}, {}); }),
            "jsonl: 1 prompts but 0 responses");
  // The alphabet is every character of the prompts and responses, so the char tokenizer built
  // from it encodes all of them.
  const models::Tokenizer tok = models::Tokenizer::from_corpus(t->alphabet());
  for (const char* s : {"rev abc=cba", "name two: x y \n", "otheré", "more m"})
    EXPECT_EQ(tok.decode(tok.encode(s)), s);
  EXPECT_EQ(models::utf8_decode(t->alphabet()).size(),
            std::set<char32_t>({'r', 'e', 'v', ' ', 'a', 'b', 'c',  '=', 'n', 'm',
                                't', 'w', 'o', ':', 'x', 'y', '\n', 'z', 'h', U'é'})
                .size());
}

// ---- fingerprints
// --------------------------------------------------------------------------------

TEST(JsonlTask, RunsRecordTheFingerprintAndARebuiltTaskChecksIt) {
  EXPECT_EQ(data_fingerprint(""), "cbf29ce484222325");  // FNV-1a 64's offset basis
  EXPECT_EQ(data_fingerprint("a"), "af63dc4c8601ec8c");
  const std::string dir = temp_dir("jsonl_fingerprint");
  const std::string path = dir + "/d.jsonl";
  const std::string text = two_hundred_prompts();
  fs::atomic_write_file(path, text);
  TaskConfig c = jsonl_config(path);
  const std::unique_ptr<Task> t = make_task(c);
  EXPECT_EQ(t->data_fingerprint(), data_fingerprint(text));
  // What a run records (a trainer fills the fingerprint from its task), and the task rebuilt
  // from it.
  TaskConfig run = c;
  run.data_fingerprint = t->data_fingerprint();
  json::Value recorded = json::Value::object();
  set_task_keys(recorded, run);
  EXPECT_EQ(recorded.at("data").as_string(), path);
  EXPECT_EQ(recorded.at("data_fingerprint").as_string(), data_fingerprint(text));
  const TaskConfig rebuilt = task_config_from_json(recorded);
  EXPECT_EQ(rebuilt.data_fingerprint, data_fingerprint(text));
  EXPECT_NO_THROW(make_task(rebuilt));
  // A recorded fingerprint is recorded again as it is (an RL run from an SFT run).
  json::Value again = json::Value::object();
  set_task_keys(again, rebuilt);
  EXPECT_EQ(again, recorded);
  // The file changes: the rebuilt task is refused, naming the file and both fingerprints.
  const std::string changed = text + line("q1?", "another answer");
  fs::atomic_write_file(path, changed);
  EXPECT_EQ(error_of([&] { make_task(rebuilt); }),
            path + ": changed since the run was trained: fingerprint " + data_fingerprint(changed) +
                ", recorded " + data_fingerprint(text));
  // A new run (no fingerprint yet), and a config without the key, are not checked.
  EXPECT_NO_THROW(make_task(c));
  json::Value old = recorded;
  old.as_object().erase(std::remove_if(old.as_object().begin(), old.as_object().end(),
                                       [](const auto& m) { return m.first == "data_fingerprint"; }),
                        old.as_object().end());
  EXPECT_EQ(task_config_from_json(old).data_fingerprint, "");
  EXPECT_NO_THROW(make_task(task_config_from_json(old)));
  // Other tasks record no fingerprint key: their config.json reads and resumes as before.
  for (const char* other : {"arith", "reviews", "text"}) {
    TaskConfig o;
    o.task = other;
    json::Value v = json::Value::object();
    set_task_keys(v, o);
    EXPECT_FALSE(v.contains("data_fingerprint")) << other;
  }
}

TEST(JsonlTask, ResumingAnSFTRunOnAChangedFileIsRefused) {
  const std::string dir = temp_dir("jsonl_resume");
  const std::string path = dir + "/d.jsonl";
  fs::atomic_write_file(path, two_hundred_prompts());
  // The tiny LM run on the file at C 16 and the default learning rate, stopped at step 2 of 4.
  SFTConfig s = rlft::testing::tiny_sft_config(dir, "sft", 16, jsonl_config(path));
  s.n_embd = 16;
  s.batch = 8;
  s.lr = SFTConfig().lr;
  s.log_every = 2;
  s.eval_every = 2;
  s.eval_generate = 4;
  s.checkpoint_every = 2;
  s.stop_after = 2;
  const SFTResult first = train_sft(s);
  EXPECT_EQ(first.step, 2);
  EXPECT_TRUE(first.val_metrics.count("exact_match"));
  const json::Value config = json::parse(fs::read_file(dir + "/sft/config.json"));
  EXPECT_EQ(config.at("task").as_string(), "jsonl");
  EXPECT_EQ(config.at("data_fingerprint").as_string(), data_fingerprint(two_hundred_prompts()));
  s.resume = true;
  s.stop_after = 0;
  fs::atomic_write_file(path, two_hundred_prompts() + line("new", "x"));
  const auto before = rlft::testing::files_of(dir + "/sft");
  EXPECT_EQ(error_of([&] { train_sft(s); }),
            path + ": changed since the run was trained: fingerprint " +
                data_fingerprint(two_hundred_prompts() + line("new", "x")) + ", recorded " +
                data_fingerprint(two_hundred_prompts()));
  EXPECT_EQ(rlft::testing::files_of(dir + "/sft"), before);
  // The file as it was: the run resumes to its end.
  fs::atomic_write_file(path, two_hundred_prompts());
  EXPECT_EQ(train_sft(s).step, 4);
}

TEST(JsonlTask, ARelativeDataPathIsRecordedFromTheRoot) {
  const std::string dir = temp_dir("jsonl_relative");
  fs::make_dirs(dir + "/data");
  fs::atomic_write_file(dir + "/data/d.jsonl", two_hundred_prompts());
  std::string cwd;
  TaskConfig c = jsonl_config("data/d.jsonl");
  rlft::testing::in_directory(dir, [&] {
    cwd = std::filesystem::current_path().string();
    const std::unique_ptr<Task> t = make_run_task(c, "");  // a fresh run
    EXPECT_EQ(t->data_fingerprint(), data_fingerprint(two_hundred_prompts()));
  });
  EXPECT_EQ(c.data, cwd + "/data/d.jsonl");
  // Recorded so, the task is rebuilt from another working directory (eval, grpo --init).
  json::Value recorded = json::Value::object();
  set_task_keys(recorded, c);
  rlft::testing::in_directory("/", [&] {
    EXPECT_NO_THROW(make_task(task_config_from_json(recorded)));
    // The same file named relative to here: the same absolute path, so a resume compares equal.
    TaskConfig again = jsonl_config(c.data.substr(1));
    make_run_task(again, "");
    EXPECT_EQ(again.data, c.data);
  });
  // A run recorded before 2026-11-27 kept "data/d.jsonl" as given: resumed with that path from
  // its directory, the path stays as recorded (its settings compare equal) and the recorded
  // fingerprint is taken, so a changed file is still named.
  json::Value old = json::Value::object();
  TaskConfig old_run = jsonl_config("data/d.jsonl");
  old_run.data_fingerprint = data_fingerprint(two_hundred_prompts());
  set_task_keys(old, old_run);
  fs::make_dirs(dir + "/old-run");
  fs::atomic_write_file(dir + "/old-run/config.json", old.dump());
  rlft::testing::in_directory(dir, [&] {
    TaskConfig resumed = jsonl_config("data/d.jsonl");
    make_run_task(resumed, dir + "/old-run");
    EXPECT_EQ(resumed.data, "data/d.jsonl");
    EXPECT_EQ(resumed.data_fingerprint, data_fingerprint(two_hundred_prompts()));
    fs::atomic_write_file("data/d.jsonl", two_hundred_prompts() + line("new", "x"));
    TaskConfig changed = jsonl_config("data/d.jsonl");
    EXPECT_EQ(error_of([&] { make_run_task(changed, dir + "/old-run"); }),
              "data/d.jsonl: changed since the run was trained: fingerprint " +
                  data_fingerprint(two_hundred_prompts() + line("new", "x")) + ", recorded " +
                  data_fingerprint(two_hundred_prompts()));
  });
}

// ---- SFT, then GRPO with the file's answers as rewards
// --------------------------------------------

namespace {

// "rev abc=" → "cba": every 3-letter word over a–f (216 prompts; 174 train, 21 validation, 21
// test), SFT'd on a 1-layer GPT (C 32) for 135 steps to a partial reverser: the curve is steep
// there (sampled exact match 0.01 at 60 steps, 0.5 at 150, 0.9 at 300), so RL has room.
class JsonlRL : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(temp_dir("jsonl_rl"));
    std::string text;
    const std::string letters = "abcdef";
    for (char x : letters)
      for (char y : letters)
        for (char z : letters)
          text += line(std::string("rev ") + x + y + z + "=", std::string() + z + y + x);
    fs::atomic_write_file(*dir_ + "/rev.jsonl", text);
    SFTConfig s =
        rlft::testing::tiny_sft_config(*dir_, "sft", 16, jsonl_config(*dir_ + "/rev.jsonl"));
    s.steps = kSftSteps;
    s.batch = 32;
    s.warmup = 20;
    s.log_every = kSftSteps;
    s.eval_every = kSftSteps;
    s.eval_examples = 20;
    s.checkpoint_every = kSftSteps;
    train_sft(s);
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }

  // Exact match of `samples` responses (temperature 1, fixed seed) to each of the first `n`
  // train prompts, judged by the task rebuilt from the run's config.
  static double sampled_exact_match(const std::string& run, int64_t n, int64_t samples) {
    const LoadedModel lm = load_model(run);
    const std::unique_ptr<Task> task = make_task(sft_config_from_json(lm.run_config).task);
    std::vector<std::string> prompts;
    const std::vector<std::string> train = task->prompts(Split::train);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t k = 0; k < samples; ++k) prompts.push_back(train[size_t(i)]);
    models::SamplingConfig sc;
    sc.max_new_tokens = 5;
    Generator gen(12345);
    return task
        ->sample_metrics(prompts, sample_responses(*lm.model, lm.tokenizer, prompts, sc, gen))
        .at("exact_match");
  }

  static constexpr int64_t kSftSteps = 135;
  static std::string* dir_;
};
std::string* JsonlRL::dir_ = nullptr;

}  // namespace

TEST_F(JsonlRL, GRPORewardsAreTheFilesAnswersAndRaiseExactMatch) {
  GroupRLConfig c = group_rl_defaults("grpo");
  c.init = *dir_ + "/sft";
  c.train_prompts = 16;
  c.prompts = 8;
  c.group_size = 8;
  c.steps = 40;
  c.lr = 1e-3;
  c.eval_prompts = 0;
  c.out_dir = *dir_;
  c.name = "grpo";
  c.quiet = true;
  const double before = sampled_exact_match(c.init, 16, 16);
  const GroupRLResult r = train_group_rl(c);
  const double after = sampled_exact_match(r.run_dir, 16, 16);
  std::printf("jsonl grpo: sampled exact match on 16 train prompts %.3f -> %.3f (%.1f s)\n", before,
              after, r.seconds);
  // The reward is the verifier's: reward_correct 1, reward_wrong 0, no format reward, so each
  // step's reward mean is its accuracy (the exact match of its samples against the file).
  ASSERT_EQ(r.reward_mean.size(), size_t(c.steps));
  for (size_t i = 0; i < r.reward_mean.size(); ++i)
    EXPECT_DOUBLE_EQ(r.reward_mean[i], r.accuracy[i]) << i;
  // 40 GRPO steps (8 prompts × G 8, lr 1e-3) on 16 train prompts; exact match of 16 samples per
  // prompt at temperature 1. Measured (build-h1, this test with the SFT and GRPO seeds both set
  // to 0…5): 0.281 → 0.727 at seed 0 (the test's), gains +0.16 to +0.46 over the six seeds, each
  // run about 1 s; the margin 0.1 is under the smallest, for other GEMM paths' rounding.
  EXPECT_GE(after, before + 0.1);
  // The RL run records the SFT run's task, fingerprint included, so `rlft lm eval` rebuilds it.
  const TaskConfig tc = sft_config_from_json(load_model(r.run_dir).run_config).task;
  EXPECT_EQ(tc.task, "jsonl");
  EXPECT_EQ(tc.data_fingerprint, data_fingerprint(fs::read_file(*dir_ + "/rev.jsonl")));
}

// --stop-at-exact-match works on a jsonl task (its verifier is exact match): an SFT run on the
// reversal data stops at the first validation whose greedy exact match reaches 0.5, well before
// --steps.
TEST_F(JsonlRL, SFTStopsAtAnExactMatch) {
  SFTConfig s = sft_config_from_json(load_model(*dir_ + "/sft").run_config);
  s.steps = 2000;
  s.eval_every = 50;
  s.eval_generate = 21;  // the validation prompts
  s.log_every = 50;
  s.checkpoint_every = 2000;
  s.stop_at_exact_match = 0.5;
  s.out_dir = *dir_;
  s.name = "sft-stop";
  s.quiet = true;
  const SFTResult r = train_sft(s);
  EXPECT_LT(r.step, 2000);
  EXPECT_GE(r.val_metrics.at("exact_match"), 0.5);
}
