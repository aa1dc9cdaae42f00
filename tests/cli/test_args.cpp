// cli::Args::take_unwritten, the step of `--resume` that gives each option left off the command
// line the value a run recorded: typed, keyed by the option's config name, and never over an
// option that was written.
#include <gtest/gtest.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "cli/args.h"
#include "engine/json.h"
#include "test_util.h"

namespace {

using rlft::cli::Args;
namespace json = rlft::json;

struct Settings {
  std::string env = "CartPole-v1";
  double lr = 2.5e-4;
  int64_t steps = 100;
  int heads = 4;
  uint64_t seed = 1;
  bool norm = true;
};

Args bind(Settings& s) {
  Args a("rlft test", "take_unwritten");
  a.add("--env", &s.env, "environment");
  a.add("--lr", &s.lr, "learning rate");
  a.add("--steps", &s.steps, "steps");
  a.add("--heads", &s.heads, "heads");
  a.add("--seed", &s.seed, "seed");
  a.add("--norm", &s.norm, "normalise");
  a.record_as("--env", "env_id");
  return a;
}

void parse(Args& a, std::vector<std::string> words) {
  words.insert(words.begin(), "rlft");
  std::vector<char*> argv;
  for (std::string& w : words) argv.push_back(w.data());
  ASSERT_TRUE(a.parse(int(argv.size()), argv.data(), 1));
}

TEST(ArgsTakeUnwritten, LeftOutOptionsTakeTheRecordedValuesWrittenOnesStay) {
  Settings s;
  Args a = bind(s);
  parse(a, {"--steps", "300"});
  const json::Value recorded = json::parse(
      R"({"env_id": "Pendulum-v1", "lr": 0.001, "steps": 200, "heads": 8, "seed": 7,
          "norm": false, "algorithm": "ppo"})");
  // The flags that took a recorded value, in the order they were added.
  EXPECT_EQ(a.take_unwritten(recorded, "config.json", {"--seed"}),
            (std::vector<std::string>{"--env", "--lr", "--heads", "--norm"}));
  EXPECT_EQ(s.env, "Pendulum-v1");  // under its recorded name
  EXPECT_EQ(s.lr, 0.001);
  EXPECT_EQ(s.steps, 300);  // written: kept
  EXPECT_EQ(s.heads, 8);
  EXPECT_EQ(s.seed, 1u);  // in `keep`: the invocation's own
  EXPECT_FALSE(s.norm);
  // A key under the flag's own name is not read for an option recorded under another.
  Settings t;
  Args b = bind(t);
  parse(b, {});
  b.take_unwritten(json::parse(R"({"env": "Pendulum-v1", "lr": 3})"), "config.json", {});
  EXPECT_EQ(t.env, "CartPole-v1");
  EXPECT_EQ(t.lr, 3.0);  // an integer is a number
}

TEST(ArgsTakeUnwritten, AValueOfTheWrongTypeNamesTheFileTheSettingAndTheOption) {
  const std::pair<std::string, std::string> cases[] = {
      {R"({"steps": 1.5})", "setting 'steps' is 1.5, not a value of --steps (like 100)"},
      {R"({"steps": "100"})", "setting 'steps' is \"100\", not a value of --steps"},
      {R"({"seed": -1})", "setting 'seed' is -1, not a value of --seed (like 1)"},
      {R"({"heads": 4294967296})", "setting 'heads' is 4294967296, not a value of --heads"},
      {R"({"norm": "true"})", "setting 'norm' is \"true\", not a value of --norm (like true)"},
      {R"({"env_id": 3})", "setting 'env_id' is 3, not a value of --env (like CartPole-v1)"},
      {R"({"lr": null})", "setting 'lr' is null, not a value of --lr"},
  };
  for (const auto& c : cases) {
    const auto& [text, expect] = c;
    const std::string& json_text =
        text;  // a lambda below reads it (no structured binding: Clang 14)
    Settings s;
    Args a = bind(s);
    parse(a, {});
    const std::string e = rlft::testing::error_of(
        [&] { a.take_unwritten(json::parse(json_text), "runs/x/config.json", {}); });
    EXPECT_EQ(e.rfind("runs/x/config.json: " + expect, 0), 0u) << text << "\n" << e;
  }
  Settings s;
  Args a = bind(s);
  parse(a, {});
  EXPECT_NE(rlft::testing::error_of([&] {
              a.take_unwritten(json::parse("[1]"), "c.json", {});
            }).find("c.json: not a run's settings"),
            std::string::npos);
}

// Args::parse's error for `words`, or "<no error>".
std::string parse_error(Args& a, std::vector<std::string> words) {
  words.insert(words.begin(), "rlft");
  std::vector<char*> argv;
  for (std::string& w : words) argv.push_back(w.data());
  return rlft::testing::error_of([&] { a.parse(int(argv.size()), argv.data(), 1); });
}

// An int option takes exactly int32's range; one past either end is an error, not a value
// wrapped into range.
TEST(ArgsParse, AnIntOptionTakesInt32sRangeOnly) {
  Settings s;
  Args a = bind(s);
  parse(a, {"--heads", "2147483647"});
  EXPECT_EQ(s.heads, 2147483647);
  parse(a, {"--heads", "-2147483648"});
  EXPECT_EQ(s.heads, -2147483647 - 1);
  EXPECT_EQ(parse_error(a, {"--heads", "2147483648"}), "--heads: 2147483648 is out of range");
  EXPECT_EQ(parse_error(a, {"--heads=-2147483649"}), "--heads: -2147483649 is out of range");
  EXPECT_EQ(parse_error(a, {"--heads", "4294967300"}), "--heads: 4294967300 is out of range");
}

// An unsigned option refuses a negative value (it would wrap to 2^64 - 1).
TEST(ArgsParse, AnUnsignedOptionRefusesANegativeValue) {
  Settings s;
  Args a = bind(s);
  parse(a, {"--seed", "0"});
  EXPECT_EQ(s.seed, 0u);
  EXPECT_EQ(parse_error(a, {"--seed", "-1"}), "--seed: must be >= 0, got -1");
  EXPECT_EQ(s.seed, 0u);
}

// "--no-X" sets a boolean X to false; for an option that is not a boolean, or written with a
// value, it is an unknown option.
TEST(ArgsParse, NoPrefixNegatesOnlyABoolean) {
  Settings s;
  Args a = bind(s);
  parse(a, {"--no-norm"});
  EXPECT_FALSE(s.norm);
  EXPECT_EQ(parse_error(a, {"--no-lr"}), "rlft test: unknown option '--no-lr' (see --help)");
  EXPECT_EQ(parse_error(a, {"--no-norm=true"}),
            "rlft test: unknown option '--no-norm' (see --help)");
  EXPECT_EQ(s.lr, 2.5e-4);
}

// A positional argument left out is an error naming it.
TEST(ArgsParse, AMissingPositionalArgumentIsNamed) {
  Settings s;
  std::string file;
  Args a = bind(s);
  a.positional("file", &file, "input");
  EXPECT_EQ(parse_error(a, {"--lr", "0.5"}), "rlft test: missing argument <file>");
  parse(a, {"in.txt"});
  EXPECT_EQ(file, "in.txt");
  EXPECT_EQ(parse_error(a, {"in.txt", "more"}), "rlft test: unexpected argument 'more'");
}

// peek_once reads a flag's value before parsing; given twice (in either spelling) it is an error
// naming both values.
TEST(ArgsParse, APeekedFlagMayBeGivenOnceOnly) {
  std::vector<std::string> words = {"rlft", "train", "--preset", "a", "--lr", "1"};
  std::vector<char*> argv;
  for (std::string& w : words) argv.push_back(w.data());
  EXPECT_EQ(Args::peek_once(int(argv.size()), argv.data(), 2, "--preset"), "a");
  EXPECT_EQ(Args::peek_once(int(argv.size()), argv.data(), 2, "--seed"), std::nullopt);
  words.push_back("--preset=b");
  argv.clear();
  for (std::string& w : words) argv.push_back(w.data());
  EXPECT_EQ(rlft::testing::error_of(
                [&] { (void)Args::peek_once(int(argv.size()), argv.data(), 2, "--preset"); }),
            "--preset: given twice ('a' and 'b'); give one preset and override its settings "
            "with options");
}

}  // namespace
