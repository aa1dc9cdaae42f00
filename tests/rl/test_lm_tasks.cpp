// Tests of the LM tasks: determinism, disjoint splits, the arith verifier, the review grammar's
// parser and sentiment scorer, the text task's positional split, and the SVG plot helper.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <set>

#include "engine/fs.h"
#include "models/tokenizer.h"
#include "rl/llm/lm.h"
#include "rl/llm/tasks/arith.h"
#include "rl/llm/tasks/reviews.h"
#include "rl/llm/tasks/text.h"
#include "rl/plot.h"
#include "test_util.h"

using namespace rlft;
using namespace rlft::llm;

namespace {

std::set<std::string> prompts_of(const Task& t, Split s) {
  std::set<std::string> out;
  for (const Example& e : t.examples(s)) out.insert(e.prompt);
  return out;
}

bool disjoint(const std::set<std::string>& a, const std::set<std::string>& b) {
  for (const std::string& x : a)
    if (b.count(x)) return false;
  return true;
}

using rlft::testing::temp_dir;

// A text task on `text`, written to <dir>/corpus.txt, in chunks of `chunk` characters.
TaskConfig text_task(const std::string& dir, const std::string& text, int64_t chunk) {
  TaskConfig c;
  c.task = "text";
  c.data = dir + "/corpus.txt";
  c.chunk = chunk;
  fs::atomic_write_file(c.data, text);
  return c;
}

}  // namespace

TEST(ArithTask, DeterministicDisjointSplits) {
  TaskConfig c;
  c.ops = "+-";
  c.digits = 2;
  const ArithTask a(c), b(c);
  EXPECT_EQ(a.examples(Split::test).size(), 500u);
  EXPECT_EQ(a.examples(Split::validation).size(), 500u);
  EXPECT_GT(a.examples(Split::train).size(), 16000u);  // ~85% of 20 000 problems
  for (Split s : {Split::train, Split::validation, Split::test}) {
    ASSERT_EQ(a.examples(s).size(), b.examples(s).size());
    for (size_t i = 0; i < a.examples(s).size(); ++i)
      EXPECT_EQ(a.examples(s)[i].prompt, b.examples(s)[i].prompt);
  }
  const auto tr = prompts_of(a, Split::train), va = prompts_of(a, Split::validation),
             te = prompts_of(a, Split::test);
  EXPECT_EQ(tr.size(), a.examples(Split::train).size());  // no duplicates either
  EXPECT_TRUE(disjoint(tr, va));
  EXPECT_TRUE(disjoint(tr, te));
  EXPECT_TRUE(disjoint(va, te));
  for (const Example& e : a.examples(Split::test))
    EXPECT_EQ(ArithTask::answer(e.prompt), e.response);
  // Another data seed gives another split; adding '*' keeps the + and - problems where they were.
  TaskConfig c2 = c;
  c2.data_seed = 99;
  EXPECT_NE(ArithTask(c2).examples(Split::test)[0].prompt, a.examples(Split::test)[0].prompt);
  TaskConfig c3 = c;
  c3.ops = "+-*";
  c3.eval_size = 100000;
  c.eval_size = 100000;
  const auto te_all = prompts_of(ArithTask(c), Split::test);
  const auto te3 = prompts_of(ArithTask(c3), Split::test);
  for (const std::string& p : te_all) EXPECT_TRUE(te3.count(p)) << p;
  // A problem's split is the same under every --digits: the 1-digit problems sit where the
  // 2-digit task puts them, and so do the 2-digit ones in the 3-digit task.
  auto split_of = [](int64_t digits, int64_t size) {
    TaskConfig t;
    t.ops = "+-";
    t.digits = digits;
    t.train_size = t.eval_size = size;  // a split holds its first `size` problems once shuffled
    const ArithTask task(t);
    std::map<std::string, Split> out;
    for (Split s : {Split::train, Split::validation, Split::test})
      for (const Example& e : task.examples(s)) out[e.prompt] = s;
    return out;
  };
  const auto one = split_of(1, 1000000), two = split_of(2, 1000000), three = split_of(3, 100000);
  EXPECT_EQ(one.size(), 200u);  // every problem of each
  EXPECT_EQ(two.size(), 20000u);
  for (const auto& [prompt, s] : one) EXPECT_EQ(two.at(prompt), s) << prompt;
  size_t found = 0;  // the 2-digit problems among the 3-digit task's 300k kept ones
  for (const auto& [prompt, s] : two)
    if (const auto it = three.find(prompt); it != three.end()) {
      ++found;
      EXPECT_EQ(it->second, s) << prompt;
    }
  EXPECT_GT(found, 1000u);
  // 1-digit + has 100 problems: some data seed hashes none into validation (5% of them), an
  // error naming the split rather than an empty split whose loss reads 0.
  TaskConfig tiny = c;
  tiny.digits = 1;
  tiny.ops = "+";
  std::string err = "<no error>";  // error_of's word for a call that did not throw
  for (uint64_t seed = 0; seed < 3000 && err == "<no error>"; ++seed) {
    tiny.data_seed = seed;
    err = rlft::testing::error_of([&] { ArithTask t(tiny); });
  }
  ASSERT_NE(err, "<no error>") << "no seed below 3000 leaves a split of 1-digit + empty";
  EXPECT_EQ(err,
            "arith: the validation split is empty: none of the 100 problems of --digits 1 "
            "--ops \"+\" falls in it under --data-seed " +
                std::to_string(tiny.data_seed) +
                " (another --data-seed, or more digits or operators)");
}

TEST(ArithTask, VerifierCases) {
  TaskConfig c;
  const ArithTask t(c);
  EXPECT_EQ(t.score("37+45=", "82"), 1.0);
  EXPECT_EQ(t.score("37+45=", "82<|eos|>"), 1.0);  // trailing EOS tolerated
  EXPECT_EQ(t.score("37+45=", "82<|eos|><|eos|>"), 0.0);
  EXPECT_EQ(t.score("37+45=", "82 "), 0.0);
  EXPECT_EQ(t.score("37+45=", " 82"), 0.0);
  EXPECT_EQ(t.score("37+45=", "082"), 0.0);
  EXPECT_EQ(t.score("37+45=", "+82"), 0.0);
  EXPECT_EQ(t.score("37+45=", "8"), 0.0);
  EXPECT_EQ(t.score("37+45=", "821"), 0.0);
  EXPECT_EQ(t.score("37+45=", ""), 0.0);
  EXPECT_EQ(t.score("12-45=", "-33"), 1.0);
  EXPECT_EQ(t.score("7*13=", "91<|eos|>"), 1.0);
  EXPECT_EQ(t.score("0-0=", "0"), 1.0);
  EXPECT_THROW(t.score("37+45", "82"), Error);
  EXPECT_THROW(t.score("a+b=", "82"), Error);
  const SampleMetrics m = t.sample_metrics({"1+1=", "2+2="}, {"2<|eos|>", "5"});
  EXPECT_EQ(m.at("exact_match"), 0.5);
  TaskConfig bad_ops, bad_digits;
  bad_ops.ops = "+/";
  bad_digits.digits = 4;
  EXPECT_THROW(ArithTask{bad_ops}, Error);
  EXPECT_THROW(ArithTask{bad_digits}, Error);
}

// With one operator the task holds exactly that operator's problems: every a op b of
// 1-digit operands once across the three splits, each with its answer computed here.
TEST(ArithTask, OneOperatorGivesEveryProblemOfItOnce) {
  for (const char op : {'+', '-', '*'}) {
    TaskConfig c;
    c.ops = std::string(1, op);
    c.digits = 1;
    c.train_size = c.eval_size = 1000;
    const ArithTask t(c);
    std::map<std::string, std::string> all;
    for (Split s : {Split::train, Split::validation, Split::test})
      for (const Example& e : t.examples(s)) EXPECT_TRUE(all.emplace(e.prompt, e.response).second);
    ASSERT_EQ(all.size(), 100u) << op;
    for (int a = 0; a < 10; ++a)
      for (int b = 0; b < 10; ++b) {
        const std::string prompt = std::to_string(a) + op + std::to_string(b) + "=";
        const int want = op == '+' ? a + b : op == '-' ? a - b : a * b;
        ASSERT_TRUE(all.count(prompt)) << prompt;
        EXPECT_EQ(all.at(prompt), std::to_string(want)) << prompt;
      }
  }
}

// Each split is its problems in id order ((a·100 + b)·3 + op), shuffled by Fisher–Yates with
// the swap partner drawn from [0, i], the current place included: a uniform permutation, which
// leaves at least one problem in its place with probability about 1 − 1/e ≈ 0.63. (Drawn from
// [0, i) instead, it is Sattolo's algorithm: one cycle through all, never a problem in place.)
// Over 60 data seeds, the ~255 training problems of "+-*" at one digit keep one in place in
// about 38 (binomial: sd 3.7).
TEST(ArithTask, TheShuffleOfASplitMayLeaveAProblemInPlace) {
  int with_fixed_point = 0;
  for (uint64_t seed = 1; seed <= 60; ++seed) {
    TaskConfig c;
    c.ops = "+-*";
    c.digits = 1;
    c.data_seed = seed;
    c.train_size = c.eval_size = 1000;
    const ArithTask t(c);
    std::vector<int> ids;
    for (const Example& e : t.examples(Split::train)) {
      const int a = e.prompt[0] - '0', b = e.prompt[2] - '0';
      const char op = e.prompt[1];
      ids.push_back((a * 100 + b) * 3 + (op == '+' ? 0 : op == '-' ? 1 : 2));
    }
    std::vector<int> sorted = ids;
    std::sort(sorted.begin(), sorted.end());
    bool fixed = false;
    for (size_t k = 0; k < ids.size(); ++k) fixed = fixed || ids[k] == sorted[k];
    with_fixed_point += fixed;
  }
  EXPECT_GE(with_fixed_point, 25);
  EXPECT_LE(with_fixed_point, 52);
}

// An operator given twice in --ops is refused (it would put every problem in twice).
TEST(ArithTask, RepeatedOperatorIsRefused) {
  for (const char* ops : {"++", "+-+", "**"}) {
    TaskConfig c;
    c.ops = ops;
    EXPECT_THROW(ArithTask{c}, Error) << ops;
  }
}

// The verifier reads operands of up to 9 digits (so a·b stays far inside int64) and refuses
// longer ones as a malformed prompt.
TEST(ArithTask, AnswerTakesOperandsOfUpToNineDigits) {
  EXPECT_EQ(ArithTask::answer("999999999*999999999="), "999999998000000001");
  EXPECT_EQ(ArithTask::answer("123456789+1="), "123456790");
  EXPECT_THROW(ArithTask::answer("1234567890+1="), Error);
  EXPECT_THROW(ArithTask::answer("1+1234567890="), Error);
}

// A prompt ends at its '=': anything after it makes the prompt malformed.
TEST(ArithTask, TextAfterTheEqualsSignIsMalformed) {
  EXPECT_EQ(ArithTask::answer("1+1="), "2");
  for (const char* bad : {"1+1=2", "1+1==", "1+1= ", "1+1=\n"})
    EXPECT_THROW(ArithTask::answer(bad), Error) << bad;
}

TEST(ReviewsTask, DisjointSplitsAndEveryReviewParses) {
  TaskConfig c;
  c.train_size = 3000;
  c.eval_size = 200;
  const ReviewsTask t(c);
  std::set<std::string> texts[3];
  size_t longest = 0;
  for (Split s : {Split::train, Split::validation, Split::test}) {
    EXPECT_EQ(t.examples(s).size(), s == Split::train ? 3000u : 200u);
    for (const Example& e : t.examples(s)) {
      const std::string text = e.prompt + e.response;
      EXPECT_TRUE(ReviewsTask::is_grammatical(text)) << text;
      texts[int(s)].insert(text);
      longest = std::max(longest, text.size());
    }
  }
  EXPECT_LE(longest, 126u);  // BOS + review + EOS fits a 128-token context
  EXPECT_TRUE(disjoint(texts[0], texts[1]) && disjoint(texts[0], texts[2]) &&
              disjoint(texts[1], texts[2]));
  std::set<std::string> open[3];
  for (Split s : {Split::train, Split::validation, Split::test})
    for (const std::string& p : t.prompts(s)) open[int(s)].insert(p);
  EXPECT_EQ(open[0].size() + open[1].size() + open[2].size(), 160u);
  EXPECT_TRUE(disjoint(open[0], open[1]) && disjoint(open[0], open[2]) &&
              disjoint(open[1], open[2]));
  for (Split s : {Split::train, Split::validation, Split::test})
    for (const Example& e : t.examples(s)) EXPECT_TRUE(open[int(s)].count(e.prompt)) << e.prompt;
  // The sampler covers the three moods.
  int pos = 0, neg = 0;
  for (const Example& e : t.examples(Split::train)) {
    const double p = ReviewsTask::sentiment(e.prompt + e.response);
    pos += p > 0.8;
    neg += p < 0.2;
  }
  EXPECT_GT(pos, 600);
  EXPECT_GT(neg, 600);
}

// An opening's split is set by its hash u = hash_unit(data_seed, opening): test below 0.10,
// validation in [0.10, 0.20), train from 0.20.
TEST(ReviewsTask, OpeningsSplitByTheirHashAtTenAndTwentyPercent) {
  for (const uint64_t seed : {uint64_t(1234), uint64_t(7)}) {
    TaskConfig c;
    c.data_seed = seed;
    c.train_size = 10;
    c.eval_size = 10;
    const ReviewsTask t(c);
    size_t n = 0;
    for (Split s : {Split::train, Split::validation, Split::test})
      for (const std::string& p : t.prompts(s)) {
        ++n;
        const double u = hash_unit(seed, p);
        const Split want = u < 0.10 ? Split::test : u < 0.20 ? Split::validation : Split::train;
        EXPECT_EQ(int(s), int(want)) << p << " u = " << u;
      }
    EXPECT_EQ(n, 160u);
  }
}

TEST(ReviewsTask, ParserAndSentiment) {
  EXPECT_TRUE(ReviewsTask::is_grammatical("review: the acting was superb."));
  EXPECT_TRUE(ReviewsTask::is_grammatical(
      "review: this plot felt very dull and not clever. i hated the ending."));
  EXPECT_TRUE(ReviewsTask::is_grammatical("review: the sound is okay. overall it was rather fun."));
  EXPECT_TRUE(ReviewsTask::is_grammatical("review: the price seemed fine. this camera was great."));
  EXPECT_FALSE(ReviewsTask::is_grammatical("review: the acting was superb"));    // no period
  EXPECT_FALSE(ReviewsTask::is_grammatical("review: the acting was superb. "));  // trailing space
  EXPECT_FALSE(ReviewsTask::is_grammatical("review: the acting was very."));     // adverb alone
  EXPECT_FALSE(ReviewsTask::is_grammatical("review: the acting was superbb."));
  EXPECT_FALSE(ReviewsTask::is_grammatical("review: the acting  was superb."));
  EXPECT_FALSE(
      ReviewsTask::is_grammatical("review: the price seemed fine. this camera was great and fun."));
  EXPECT_FALSE(ReviewsTask::is_grammatical("review: the acting was superb. i loved it."));
  EXPECT_FALSE(ReviewsTask::is_grammatical("review: the acting was superb.<|eos|>"));
  EXPECT_FALSE(ReviewsTask::is_grammatical("the acting was superb."));
  // sigmoid(2·1.4) for "superb"; "not" flips and shrinks; "very" intensifies.
  EXPECT_NEAR(ReviewsTask::sentiment("review: the acting was superb."), 1 / (1 + std::exp(-2.8)),
              1e-12);
  EXPECT_NEAR(ReviewsTask::sentiment("review: the acting was not superb."),
              1 / (1 + std::exp(2 * 0.84)), 1e-12);
  EXPECT_GT(ReviewsTask::sentiment("the acting was very great"),
            ReviewsTask::sentiment("the acting was great"));
  EXPECT_LT(ReviewsTask::sentiment("review: i hated this plot. overall it was awful."), 0.01);
  EXPECT_EQ(ReviewsTask::sentiment("nothing to see"), 0.5);  // defined on any text
  TaskConfig c;
  c.train_size = 10;
  c.eval_size = 10;
  const ReviewsTask t(c);
  const SampleMetrics m = t.sample_metrics({"review: the acting was", "review: the plot is"},
                                           {" superb.<|eos|>", " superb and"});
  EXPECT_EQ(m.at("grammatical"), 0.5);
  EXPECT_GT(m.at("sentiment"), 0.9);
}

// A review is one or two sentences: nothing may follow the second one.
TEST(ReviewsTask, NothingFollowsTheSecondSentence) {
  const std::string two = "review: the acting was superb. i loved the plot.";
  EXPECT_TRUE(ReviewsTask::is_grammatical(two));
  EXPECT_FALSE(ReviewsTask::is_grammatical(two + " overall it was fun."));
  EXPECT_FALSE(ReviewsTask::is_grammatical(two + " "));
  EXPECT_FALSE(ReviewsTask::is_grammatical(two + "<|eos|>"));
  EXPECT_FALSE(
      ReviewsTask::is_grammatical("review: the acting was superb. overall it was fun. the plot."));
}

TEST(TextTask, SplitsByPosition) {
  const std::string dir = temp_dir("text_task");
  std::string text;
  for (int i = 0; i < 200; ++i) text += "line " + std::to_string(i) + " ünïcode\n";
  TaskConfig c = text_task(dir, text, 32);
  const std::unique_ptr<Task> t = make_task(c);
  const TextTask& tt = dynamic_cast<const TextTask&>(*t);
  const int64_t n = int64_t(models::utf8_decode(text).size());
  EXPECT_EQ(tt.range(Split::train).first, 0);
  EXPECT_EQ(tt.range(Split::train).second, tt.range(Split::validation).first);
  EXPECT_EQ(tt.range(Split::validation).second, tt.range(Split::test).first);
  EXPECT_EQ(tt.range(Split::test).second, n);
  // Every chunk is a substring of its own split's text, and the splits' texts do not overlap.
  const std::vector<char32_t> cps = models::utf8_decode(text);
  for (Split s : {Split::train, Split::validation, Split::test}) {
    std::string part;
    for (int64_t i = tt.range(s).first; i < tt.range(s).second; ++i)
      part += models::utf8_encode(cps[size_t(i)]);
    ASSERT_FALSE(t->examples(s).empty());
    for (const Example& e : t->examples(s)) {
      EXPECT_NE(part.find(e.response), std::string::npos);
      EXPECT_EQ(models::utf8_decode(e.response).size(), 32u);
      EXPECT_FALSE(e.eos);
    }
  }
  const models::Tokenizer tok = models::Tokenizer::from_corpus(t->alphabet());
  EXPECT_EQ(tok.decode(tok.encode(text)), text);
  c.data = dir + "/missing.txt";
  EXPECT_THROW(make_task(c), Error);
  c.task = "poetry";
  EXPECT_THROW(make_task(c), Error);
}

// 400 characters: train [0, 360), validation [360, 380), test [380, 400). Train chunks start
// every chunk/2 characters, the others every chunk; a chunk never runs past its split's end, and
// a split no longer than a chunk is one example of all of it.
TEST(TextTask, ChunkStartsStrideAndShortSplitsByHand) {
  const std::string dir = temp_dir("text_task_chunks");
  std::string text;
  for (int i = 0; i < 400; ++i) text += char('a' + i % 26);
  TaskConfig c = text_task(dir, text, 10);
  const std::unique_ptr<Task> t10 = make_task(c);
  ASSERT_EQ(t10->examples(Split::train).size(), 71u);  // starts 0, 5, …, 350
  for (size_t i = 0; i < 71; ++i)
    EXPECT_EQ(t10->examples(Split::train)[i].response, text.substr(5 * i, 10)) << i;
  ASSERT_EQ(t10->examples(Split::validation).size(), 2u);  // 360, 370
  EXPECT_EQ(t10->examples(Split::validation)[0].response, text.substr(360, 10));
  EXPECT_EQ(t10->examples(Split::validation)[1].response, text.substr(370, 10));
  ASSERT_EQ(t10->examples(Split::test).size(), 2u);  // 380, 390
  EXPECT_EQ(t10->examples(Split::test)[1].response, text.substr(390, 10));
  c.chunk = 25;
  const std::unique_ptr<Task> t25 = make_task(c);
  EXPECT_EQ(t25->examples(Split::train).size(), 28u);  // starts 0, 12, …, 324
  ASSERT_EQ(t25->examples(Split::validation).size(), 1u);
  EXPECT_EQ(t25->examples(Split::validation)[0].response, text.substr(360, 20));
  ASSERT_EQ(t25->examples(Split::test).size(), 1u);
  EXPECT_EQ(t25->examples(Split::test)[0].response, text.substr(380, 20));
}

// The text task needs 40 characters (so that each split has some): 39 are refused.
TEST(TextTask, FewerThanFortyCharactersAreRefused) {
  TaskConfig c = text_task(temp_dir("text_task_short"), std::string(39, 'x'), 4);
  EXPECT_THROW(make_task(c), Error);
  fs::atomic_write_file(c.data, std::string(40, 'x'));
  const std::unique_ptr<Task> t = make_task(c);
  ASSERT_EQ(t->examples(Split::test).size(), 1u);  // [38, 40): shorter than a chunk
  EXPECT_EQ(t->examples(Split::test)[0].response, "xx");
}

// A text chunk is at least two characters; at two, the 36 training characters of a 40-character
// text ([0, 36)) give a chunk at every start 0..34 (stride max(2 / 2, 1) = 1): 35 of them.
TEST(TextTask, AChunkIsAtLeastTwoCharacters) {
  TaskConfig c = text_task(temp_dir("text_task_chunk_two"), std::string(40, 'x'), 1);
  EXPECT_EQ(rlft::testing::error_of([&] { (void)make_task(c); }),
            "text: --chunk must be at least 2, got 1");
  c.chunk = 2;
  const std::unique_ptr<Task> t = make_task(c);
  EXPECT_EQ(t->examples(Split::train).size(), 35u);
  EXPECT_EQ(t->examples(Split::train)[0].response, "xx");
}

// strip_eos takes one EOS off the end, and a response that is only an EOS becomes empty.
TEST(TaskHelpers, StripEosTakesOneTrailingEos) {
  EXPECT_EQ(strip_eos("<|eos|>"), "");
  EXPECT_EQ(strip_eos("12<|eos|>"), "12");
  EXPECT_EQ(strip_eos("12<|eos|><|eos|>"), "12<|eos|>");
  EXPECT_EQ(strip_eos("<|eos|>12"), "<|eos|>12");
  EXPECT_EQ(strip_eos("|eos|>"), "|eos|>");
}

// A string key (an opening, a jsonl prompt) is hashed by FNV-1a's loop, h = (h ^ byte) · prime,
// from the offset basis 1469598103934665603 (FNV's 14695981039346656037 short of its last digit,
// as it has always been: it fixes every recorded run's split), then as that integer key. The
// keys here were computed by hand in Python.
TEST(TaskHelpers, StringKeysHashByTheFnvLoopFromTheRecordedBasis) {
  EXPECT_EQ(hash_unit(7, std::string("")), hash_unit(7, uint64_t(1469598103934665603ull)));
  EXPECT_EQ(hash_unit(7, std::string("a")), hash_unit(7, uint64_t(0x44bd8ad473cd9906ull)));
  EXPECT_EQ(hash_unit(7, std::string("foobar")), hash_unit(7, uint64_t(0x88fad7c0a8ff07f2ull)));
}

// A run's task keys read back as the TaskConfig they were written from, every field (each set
// off its default here); only a jsonl task records a data fingerprint.
TEST(TaskHelpers, TaskKeysReadBackAsWritten) {
  TaskConfig c;
  c.task = "text";
  c.data_seed = 7;
  c.ops = "*";
  c.digits = 3;
  c.train_size = 11;
  c.eval_size = 5;
  c.data = "/data/book.txt";
  c.chunk = 31;
  json::Value v = json::Value::object();
  set_task_keys(v, c);
  EXPECT_EQ(v.find("data_fingerprint"), nullptr);
  const TaskConfig back = task_config_from_json(v);
  EXPECT_EQ(back.task, "text");
  EXPECT_EQ(back.data_seed, 7u);
  EXPECT_EQ(back.ops, "*");
  EXPECT_EQ(back.digits, 3);
  EXPECT_EQ(back.train_size, 11);
  EXPECT_EQ(back.eval_size, 5);
  EXPECT_EQ(back.data, "/data/book.txt");
  EXPECT_EQ(back.chunk, 31);
  EXPECT_EQ(back.data_fingerprint, "");
  c.task = "jsonl";
  c.data_fingerprint = "0123456789abcdef";
  json::Value w = json::Value::object();
  set_task_keys(w, c);
  EXPECT_EQ(task_config_from_json(w).data_fingerprint, "0123456789abcdef");
}

TEST(LMBatches, RightPaddedTrainingAndLeftPaddedPrompts) {
  const models::Tokenizer tok = models::Tokenizer::from_corpus("0123456789+-*=");
  const Example a{"1+2=", "3", true}, b{"10+20=", "30", true};
  const LMBatch sft = make_lm_batch(tok, {&a, &b}, 64, true);
  // b: BOS 1 0 + 2 0 = 3 0 EOS (10 tokens) → 9 inputs; a is padded to the same length.
  ASSERT_EQ(sft.inputs.shape(), Shape({2, 9}));
  const std::vector<int64_t> t = sft.targets.to_int_vector();
  // a: inputs BOS 1 + 2 = 3, targets only for "3" (at t = 4) and EOS (t = 5).
  for (int64_t i = 0; i < 9; ++i) EXPECT_EQ(t[size_t(i)] != kIgnoreIndex, i == 4 || i == 5) << i;
  EXPECT_EQ(t[4], tok.encode("3")[0]);
  EXPECT_EQ(t[5], tok.eos_id());
  EXPECT_EQ(sft.tokens, 2 + 3);
  const LMBatch pre = make_lm_batch(tok, {&a}, 64, false);
  EXPECT_EQ(pre.tokens, 6);  // every token after BOS
  const LMBatch cut = make_lm_batch(tok, {&b}, 4, false);
  EXPECT_EQ(cut.inputs.shape(), Shape({1, 4}));
  const PromptBatch pb = make_prompt_batch(tok, {"1+2=", "10+20="});
  ASSERT_EQ(pb.tokens.shape(), Shape({2, 7}));
  EXPECT_EQ(pb.tokens.to_int_vector()[0], tok.pad_id());
  EXPECT_EQ(pb.tokens.to_int_vector()[2], tok.bos_id());
  EXPECT_EQ(pb.mask.to_vector(), (std::vector<double>{0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}));
}

TEST(Plot, WritesAnSvgWithAxesSeriesAndLegend) {
  const std::string dir = temp_dir("plot");
  plot::Series a{"train", {0, 1, 2, 3}, {2.0, 1.0, 0.5, 0.25}};
  plot::Series b{"validation <val>", {0, 3}, {2.1, 0.3}};
  plot::Series c{"broken", {0, 1, 2}, {1.0, std::nan(""), 0.5}};
  plot::write_line_plot(dir + "/p.svg", "loss & more", "step", "loss", {a, b, c});
  const std::string svg = fs::read_file(dir + "/p.svg");
  EXPECT_EQ(svg.rfind("<svg", 0), 0u);
  EXPECT_NE(svg.find("</svg>"), std::string::npos);
  EXPECT_NE(svg.find("loss &amp; more"), std::string::npos);
  EXPECT_NE(svg.find("validation &lt;val&gt;"), std::string::npos);
  EXPECT_NE(svg.find("<polyline"), std::string::npos);
  EXPECT_NE(svg.find("<circle"),
            std::string::npos);  // the NaN split "broken" into two single points
  EXPECT_EQ(svg.find("nan"), std::string::npos);
  plot::PlotOptions o;
  o.log_y = true;
  EXPECT_NE(plot::line_plot_svg("t", "x", "y", {a}, o).find("(log)"), std::string::npos);
  EXPECT_NE(plot::line_plot_svg("t", "x", "y", {}).find("no data"), std::string::npos);
  EXPECT_THROW(plot::line_plot_svg("t", "x", "y", {{"bad", {1, 2}, {1}}}), Error);
  const std::vector<double> ticks = plot::nice_ticks(0, 1, 6);
  ASSERT_EQ(ticks.size(), 6u);
  for (size_t i = 0; i < 6; ++i) EXPECT_NEAR(ticks[i], 0.2 * double(i), 1e-12);
  EXPECT_EQ(plot::nice_ticks(0, 1000, 6).size(), 6u);  // step 200
}

// On a log y axis a value of 0 has no place: it is left out and counted, not drawn at log(0).
TEST(Plot, ALogAxisLeavesOutAZero) {
  plot::PlotOptions o;
  o.log_y = true;
  const std::vector<plot::Series> s = {{"s", {0, 1, 2}, {0, 1, 10}}};
  EXPECT_EQ(plot::count_unplottable(s, o), 1);
  const std::string svg = plot::line_plot_svg("t", "x", "y", s, o);
  EXPECT_NE(svg.find("1 point not drawn (not finite or beyond ±1e300, or <= 0)"), std::string::npos)
      << svg;
  EXPECT_EQ(svg.find("nan"), std::string::npos) << svg;
  EXPECT_EQ(svg.find("inf"), std::string::npos) << svg;
}

// Log y ticks: under 2.5 decades, at 1, 2 and 5 of each decade; over more, at the powers of ten
// only. y in [1, 10] spans log10 [0, 1], padded to [-0.04, 1.04]: ticks 1, 2, 5 and 10. y in
// [1, 1000] spans 3 decades: ticks 1, 10, 100 and 1000.
TEST(Plot, LogTicksAtOneTwoAndFiveOnlyWhenFewDecadesShow) {
  plot::PlotOptions o;
  o.log_y = true;
  auto y_ticks = [&](std::vector<double> y) {
    const std::string svg = plot::line_plot_svg("t", "x", "y", {{"s", {0, 1}, y}}, o);
    std::vector<std::string> labels;
    const std::string tag = "text-anchor=\"end\">";  // y tick labels (x ones are centred)
    for (size_t at = svg.find(tag); at != std::string::npos; at = svg.find(tag, at + 1)) {
      const size_t from = at + tag.size();
      labels.push_back(svg.substr(from, svg.find('<', from) - from));
    }
    return labels;
  };
  EXPECT_EQ(y_ticks({1, 10}), (std::vector<std::string>{"1", "2", "5", "10"}));
  EXPECT_EQ(y_ticks({1, 1000}), (std::vector<std::string>{"1", "10", "100", "1000"}));
}

// Coordinates by hand, 720×420 with the frame at x 78…700 (622 wide) and y 40…364 (324 high):
// the y range gets 4% of its span above and below, and larger values are drawn higher.
// (0, 0) → (1, 1): y range [−0.04, 1.04], so y = 0 at 40 + 324·(1 − 0.04/1.08) = 352 and
// y = 1 at 40 + 324·(1 − 1.04/1.08) = 52.
TEST(Plot, PointsAreDrawnWhereTheAxesPutThem) {
  const std::string svg = plot::line_plot_svg("t", "x", "y", {{"s", {0, 1}, {0, 1}}});
  EXPECT_NE(svg.find("points=\"78.00,352.00 700.00,52.00 \""), std::string::npos) << svg;
}

// One point at (0, 0) spans nothing: each axis is widened to ±0.5 around it (y then padded to
// ±0.54), so the point sits at the frame's centre, (78 + 311, 40 + 162), not at a division by 0.
TEST(Plot, ASinglePointAtZeroIsDrawnAtTheCentre) {
  const std::string svg = plot::line_plot_svg("t", "x", "y", {{"s", {0}, {0}}});
  EXPECT_NE(svg.find("<circle cx=\"389.00\" cy=\"202.00\""), std::string::npos) << svg;
  EXPECT_EQ(svg.find("nan"), std::string::npos);
}
