// Gradient accumulation (--grad-accum K) of SFT/pretraining, DPO and the reward model: a step's
// batch run as K micro-batches whose weighted losses sum to the batch's loss gives the full-batch
// step. In float64 (a copy of a tiny SFT model) K = 2 and 4 give the K = 1 weights, losses and
// logged metrics to 1e-12; SFT's micro-batches hold different numbers of counted targets, so a
// 1/K weighting fails here (checked below: it is off by far more than the tolerance). A float32
// run agrees within a stated tolerance; --batch not divisible by K is an error naming both;
// --resume may change K.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "engine/checkpoint.h"
#include "engine/error.h"
#include "engine/fs.h"
#include "engine/json.h"
#include "engine/optim.h"
#include "models/gpt.h"
#include "resume_fixture.h"
#include "rl/llm/dpo.h"
#include "rl/llm/lm.h"
#include "rl/llm/reward_model.h"
#include "rl/llm/sft.h"
#include "run_metrics.h"
#include "test_util.h"
#include "tiny_lm_runs.h"

using namespace rlft;
using namespace rlft::llm;

namespace {

using rlft::testing::error_of;
using rlft::testing::metrics_of;
using rlft::testing::temp_dir;

// Every tensor of a checkpoint file (weights and optimizer state), in the file's order.
std::vector<std::pair<std::string, std::vector<double>>> tensors_of(const std::string& run) {
  std::vector<std::pair<std::string, std::vector<double>>> out;
  for (const auto& [name, t] : load_tensors(run + "/checkpoint.safetensors"))
    out.emplace_back(name, t.to_vector());
  return out;
}

void expect_same_tensors(const std::string& a, const std::string& b, double tol) {
  const auto x = tensors_of(a), y = tensors_of(b);
  ASSERT_EQ(x.size(), y.size());
  for (size_t i = 0; i < x.size(); ++i) {
    ASSERT_EQ(x[i].first, y[i].first);
    ASSERT_EQ(x[i].second.size(), y[i].second.size());
    double worst = 0;
    for (size_t k = 0; k < x[i].second.size(); ++k)
      worst = std::max(worst, std::abs(x[i].second[k] - y[i].second[k]));
    EXPECT_LE(worst, tol) << b << " vs " << a << ": " << x[i].first;
  }
}

// Every number of each row of b equals a's (within tol), and the rows carry the same keys, but
// elapsed_seconds (wall time) and tokens_per_second.
void expect_same_metrics(const std::string& a, const std::string& b, double tol) {
  const std::vector<json::Value> x = metrics_of(a), y = metrics_of(b);
  ASSERT_EQ(x.size(), y.size());
  for (size_t i = 0; i < x.size(); ++i) {
    ASSERT_EQ(x[i].as_object().size(), y[i].as_object().size()) << "row " << i;
    for (const auto& [k, v] : x[i].as_object()) {
      if (k == "elapsed_seconds" || k == "tokens_per_second") continue;
      ASSERT_TRUE(y[i].contains(k)) << b << " row " << i << ": no " << k;
      EXPECT_NEAR(y[i].at(k).as_double(), v.as_double(), tol) << b << " row " << i << ": " << k;
    }
  }
}

// A tiny reviews SFT model (float32, tiny_lm_runs.h), its float64 copy (sft64: DPO and the
// reward model then run in float64), and 38 preference pairs in the reviews alphabet whose
// responses differ in length.
class GradAccum : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(temp_dir("grad_accum"));
    train_sft(rlft::testing::tiny_sft_config(*dir_, "sft"));
    const LoadedModel f32 = load_policy(*dir_ + "/sft");
    models::GPTConfig mc = f32.model->config();
    mc.dtype = DType::f64;
    Generator gen(0);
    models::GPT m64(mc, gen);
    const auto mine = m64.named_parameters(), theirs = f32.model->named_parameters();
    for (size_t i = 0; i < mine.size(); ++i) {
      Tensor p = mine[i].second;
      p.copy_(theirs[i].second.to(DType::f64));
    }
    std::filesystem::create_directories(*dir_ + "/sft64");
    save_checkpoint(*dir_ + "/sft64/checkpoint.safetensors", m64, nullptr,
                    checkpoint_metadata(mc, f32.tokenizer, f32.run_config, f32.step));
    const char* prompts[] = {"review: the plot was", "review: the acting was",
                             "review: the music was"};
    const char* good[] = {" great.", " superb.", " fine.", " really good.", " good and warm."};
    const char* bad[] = {" dull.", " bad.", " awful and slow.", " boring."};
    std::ofstream out(*dir_ + "/prefs.jsonl");
    for (int i = 0; i < 38; ++i)
      out << R"({"prompt":")" << prompts[i % 3] << R"(","chosen":")" << good[i % 5]
          << R"(","rejected":")" << bad[i % 4] << "\"}\n";
  }
  static void TearDownTestSuite() { delete dir_; }

  // 38 pairs, 3 held out (--eval-fraction 0.1): 35 train pairs, steps of 8 and a last of 3,
  // which K = 4 (micro-batches of 2) cuts into 2 + 1.
  static DPOConfig dpo(const std::string& name, int64_t k) {
    DPOConfig c = rlft::testing::config_at<DPOConfig>(*dir_, name);
    c.prefs = *dir_ + "/prefs.jsonl";
    c.init = *dir_ + "/sft64";
    c.epochs = 2;
    c.batch = 8;
    c.grad_accum = k;
    c.lr = 1e-3;
    c.log_every = 1;
    c.eval_every = 0;
    c.eval_samples = 1;
    return c;
  }
  static RewardModelConfig rm(const std::string& name, int64_t k) {
    RewardModelConfig c = rlft::testing::config_at<RewardModelConfig>(*dir_, name);
    c.prefs = *dir_ + "/prefs.jsonl";
    c.init = *dir_ + "/sft64";
    c.epochs = 2;
    c.batch = 8;
    c.grad_accum = k;
    return c;
  }
  static std::string* dir_;
};
std::string* GradAccum::dir_ = nullptr;

}  // namespace

// One SFT step (float64): the loss, the accumulated gradient and the weights after clip + AdamW
// with K = 2 and 4 equal K = 1's. The micro-batches' counts of counted targets differ (checked),
// and weighting their mean losses 1/K instead of N_k/N misses the batch loss by > 1e-4.
TEST_F(GradAccum, SFTStepInMicroBatchesIsTheFullBatchStepInFloat64) {
  const std::unique_ptr<Task> task = make_task(rlft::testing::tiny_reviews());
  const std::vector<Example>& train = task->examples(Split::train);
  std::vector<const Example*> examples;
  for (size_t i = 0; i < 16; ++i) examples.push_back(&train[(i * 37) % train.size()]);
  struct Step {
    SFTGradient g;
    std::vector<double> grad, weights;
  };
  for (const bool response_only : {true, false}) {
    auto step = [&](int64_t k) {
      const LoadedModel lm = load_policy(*dir_ + "/sft64");
      EXPECT_EQ(lm.model->config().dtype, DType::f64);
      lm.model->train();
      const std::vector<Tensor> params = lm.model->parameters();
      optim::AdamW opt(params, 1e-3, 0.9, 0.99, 1e-8, 0.1);
      opt.zero_grad();
      Step s;
      s.g = sft_gradient(*lm.model, lm.tokenizer, examples, response_only, k);
      for (const Tensor& p : params)
        for (double x : p.grad().to_vector()) s.grad.push_back(x);
      optim::clip_grad_norm(params, 1.0);
      opt.step();
      for (const Tensor& p : params)
        for (double x : p.to_vector()) s.weights.push_back(x);
      return s;
    };
    const Step one = step(1);
    for (const int64_t k : {2, 4}) {
      const Step acc = step(k);
      const std::string what = str(response_only ? "sft" : "pretrain", " K=", k);
      EXPECT_EQ(acc.g.tokens, one.g.tokens) << what;
      EXPECT_NEAR(acc.g.loss, one.g.loss, 1e-12) << what;
      ASSERT_EQ(acc.grad.size(), one.grad.size());
      double worst_grad = 0, worst_weight = 0;
      for (size_t i = 0; i < one.grad.size(); ++i) {
        worst_grad = std::max(worst_grad, std::abs(acc.grad[i] - one.grad[i]));
        worst_weight = std::max(worst_weight, std::abs(acc.weights[i] - one.weights[i]));
      }
      EXPECT_LE(worst_grad, 1e-12) << what;
      EXPECT_LE(worst_weight, 1e-12) << what;
    }
    // The micro-batches of K = 4 hold different counts N_k, so 1/K would be wrong: the plain mean
    // of their mean losses is not the batch loss.
    const LoadedModel lm = load_policy(*dir_ + "/sft64");
    std::vector<int64_t> counts;
    double mean_of_means = 0;
    for (int64_t k = 0; k < 4; ++k) {
      const std::vector<const Example*> part(examples.begin() + 4 * k,
                                             examples.begin() + 4 * (k + 1));
      const SFTGradient g = sft_gradient(*lm.model, lm.tokenizer, part, response_only, 1);
      counts.push_back(g.tokens);
      mean_of_means += g.loss / 4;
    }
    EXPECT_NE(*std::min_element(counts.begin(), counts.end()),
              *std::max_element(counts.begin(), counts.end()));
    EXPECT_GT(std::abs(mean_of_means - one.g.loss), 1e-4) << "1/K weighting";
  }
}

// DPO in float64, 2 epochs of 35 pairs, batch 8: K = 2 and 4 (whose last step of each epoch is
// 2 + 1 pairs) give the K = 1 run's weights and Adam state, its per-step losses and its logged
// metrics (loss, rewards, margin, accuracy, log-probs, grad_norm; held-out and sample metrics).
TEST_F(GradAccum, DPORunInMicroBatchesIsTheFullBatchRunInFloat64) {
  const DPOResult one = train_dpo(dpo("dpo-k1", 1));
  ASSERT_EQ(one.losses.size(), 10u);
  for (const int64_t k : {2, 4}) {
    const std::string name = "dpo-k" + std::to_string(k);
    const DPOResult acc = train_dpo(dpo(name, k));
    ASSERT_EQ(acc.losses.size(), one.losses.size());
    for (size_t i = 0; i < one.losses.size(); ++i)
      EXPECT_NEAR(acc.losses[i], one.losses[i], 1e-12) << name << " step " << i;
    expect_same_tensors(*dir_ + "/dpo-k1", *dir_ + "/" + name, 1e-12);
    expect_same_metrics(*dir_ + "/dpo-k1", *dir_ + "/" + name, 1e-12);
    EXPECT_EQ(json::parse(fs::read_file(*dir_ + "/" + name + "/config.json")).at("grad_accum"),
              json::Value(k));
  }
  // The runs moved: the comparison is not of three copies of the start.
  const LoadedModel start = load_policy(*dir_ + "/sft64"), end = load_policy(*dir_ + "/dpo-k1");
  const std::vector<double> a = start.model->wte->weight.to_vector(),
                            b = end.model->wte->weight.to_vector();
  double moved = 0;
  for (size_t i = 0; i < a.size(); ++i) moved = std::max(moved, std::abs(a[i] - b[i]));
  EXPECT_GT(moved, 1e-4);
}

// The reward model in float64 (Bradley–Terry + centring term, cosine lr), 2 epochs, batch 8.
TEST_F(GradAccum, RewardModelRunInMicroBatchesIsTheFullBatchRunInFloat64) {
  const RewardModelResult one = train_reward_model(rm("rm-k1", 1));
  ASSERT_EQ(one.losses.size(), 10u);
  for (const int64_t k : {2, 4}) {
    const std::string name = "rm-k" + std::to_string(k);
    const RewardModelResult acc = train_reward_model(rm(name, k));
    ASSERT_EQ(acc.losses.size(), one.losses.size());
    for (size_t i = 0; i < one.losses.size(); ++i)
      EXPECT_NEAR(acc.losses[i], one.losses[i], 1e-12) << name << " step " << i;
    expect_same_tensors(*dir_ + "/rm-k1", *dir_ + "/" + name, 1e-12);
    expect_same_metrics(*dir_ + "/rm-k1", *dir_ + "/" + name, 1e-12);
  }
  EXPECT_NE(one.losses.front(), one.losses.back());
}

// DPO stopped after 4 steps with K = 1 and resumed with K = 4 (a free setting): the run ends
// where the straight K = 1 run does.
TEST_F(GradAccum, DPOResumesWithAnotherGradAccum) {
  const auto runs =
      rlft::testing::stop_and_resume(train_dpo, dpo("dpo", 1), "dpo-straight", "dpo-switch", 4,
                                     [](DPOConfig& c) { c.grad_accum = 4; });
  ASSERT_EQ(runs.stopped.step, 4);
  const DPOResult &straight = runs.straight, &rest = runs.resumed;
  ASSERT_EQ(rest.losses.size(), 6u);
  for (size_t i = 0; i < 6; ++i) EXPECT_NEAR(rest.losses[i], straight.losses[4 + i], 1e-12) << i;
  expect_same_tensors(*dir_ + "/dpo-straight", *dir_ + "/dpo-switch", 1e-12);
  EXPECT_EQ(json::parse(fs::read_file(*dir_ + "/dpo-switch/config.json")).at("grad_accum"),
            json::Value(int64_t(4)));
}

// A float32 SFT run (16 sequences a step, 6 steps): K = 4 logs the K = 1 losses and gradient
// norms within 1e-5 relative (float32 sums in another order, carried through 6 AdamW steps).
TEST_F(GradAccum, SFTRunInFloat32AgreesWithinRounding) {
  SFTConfig c = rlft::testing::tiny_sft_config(*dir_, "sft32-k1");
  c.steps = 6;
  c.log_every = 1;
  c.eval_every = 6;
  c.checkpoint_every = 6;
  const SFTResult one = train_sft(c);
  c.name = "sft32-k4";
  c.grad_accum = 4;
  const SFTResult four = train_sft(c);
  ASSERT_EQ(four.losses.size(), 6u);
  double worst = 0;
  for (size_t i = 0; i < 6; ++i) {
    EXPECT_NEAR(four.losses[i], one.losses[i], 1e-5 * one.losses[i]) << "step " << i;
    worst = std::max(worst, std::abs(four.losses[i] - one.losses[i]) / one.losses[i]);
  }
  std::printf("float32 SFT, K = 4 vs 1: largest relative loss difference %.3g\n", worst);
  EXPECT_NE(one.losses.front(), one.losses.back());
  EXPECT_NEAR(four.val_loss, one.val_loss, 1e-5 * one.val_loss);
  const std::vector<json::Value> a = metrics_of(*dir_ + "/sft32-k1"),
                                 b = metrics_of(*dir_ + "/sft32-k4");
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    const double ga = a[i].at("grad_norm").as_double(), gb = b[i].at("grad_norm").as_double();
    EXPECT_NEAR(gb, ga, 1e-4 * ga) << "row " << i;
  }
  EXPECT_EQ(json::parse(fs::read_file(*dir_ + "/sft32-k4/config.json")).at("grad_accum"),
            json::Value(int64_t(4)));
}

// --grad-accum is free on --resume: a run stopped with K = 1 continues with K = 2, and a run
// recorded before the option existed (no grad_accum in its config.json) resumes as K = 1,
// exactly as the straight run.
TEST_F(GradAccum, SFTResumesWithAnotherGradAccumOrNone) {
  SFTConfig c = rlft::testing::tiny_sft_config(*dir_, "sft-straight");
  c.steps = 6;
  c.checkpoint_every = 3;
  const SFTResult straight = train_sft(c);
  for (const std::string name : {"sft-switch", "sft-old"}) {
    c.name = name;
    c.stop_after = 3;
    c.resume = false;
    c.grad_accum = 1;
    train_sft(c);
    if (name == "sft-old") {  // as written before --grad-accum: no such key
      const std::string path = *dir_ + "/" + name + "/config.json";
      const json::Value recorded = json::parse(fs::read_file(path));
      json::Value old = json::Value::object();
      for (const auto& [k, v] : recorded.as_object())
        if (k != "grad_accum") old.set(k, v);
      fs::atomic_write_file(path, old.dump(2) + "\n");
    } else {
      c.grad_accum = 2;
    }
    c.stop_after = 0;
    c.resume = true;
    const SFTResult rest = train_sft(c);
    ASSERT_EQ(rest.losses.size(), 3u) << name;
    for (size_t i = 0; i < 3; ++i) {
      if (name == "sft-old")
        EXPECT_EQ(rest.losses[i], straight.losses[3 + i]) << name << " step " << 3 + i;
      else
        EXPECT_NEAR(rest.losses[i], straight.losses[3 + i], 1e-5 * straight.losses[3 + i])
            << name << " step " << 3 + i;
    }
    EXPECT_EQ(json::parse(fs::read_file(*dir_ + "/" + name + "/config.json")).at("grad_accum"),
              json::Value(c.grad_accum));
  }
  // Another setting still is not free.
  c.lr = 2 * c.lr;
  EXPECT_NE(error_of([&] { train_sft(c); }).find("--resume: setting 'lr'"), std::string::npos);
}

// --batch not divisible by --grad-accum, and K < 1, are errors naming the values, before any
// run directory is written.
TEST_F(GradAccum, BatchNotDivisibleByGradAccumIsAnError) {
  SFTConfig s = rlft::testing::tiny_sft_config(*dir_, "bad-sft");
  s.batch = 10;
  s.grad_accum = 4;
  EXPECT_NE(error_of([&] {
              train_sft(s);
            }).find("rlft lm sft: --batch 10 is not divisible by --grad-accum 4"),
            std::string::npos)
      << error_of([&] { train_sft(s); });
  s.mode = "pretrain";
  EXPECT_NE(error_of([&] {
              train_sft(s);
            }).find("rlft lm pretrain: --batch 10 is not divisible by --grad-accum 4"),
            std::string::npos);
  s.grad_accum = 0;
  EXPECT_NE(error_of([&] { train_sft(s); }).find("--grad-accum must be positive, got 0"),
            std::string::npos);
  DPOConfig d = dpo("bad-dpo", 3);
  EXPECT_NE(error_of([&] {
              train_dpo(d);
            }).find("rlft lm dpo: --batch 8 is not divisible by --grad-accum 3"),
            std::string::npos)
      << error_of([&] { train_dpo(d); });
  d.grad_accum = -1;
  EXPECT_NE(error_of([&] { train_dpo(d); }).find("--grad-accum must be > 0, got -1"),
            std::string::npos);
  RewardModelConfig r = rm("bad-rm", 16);
  EXPECT_NE(error_of([&] {
              train_reward_model(r);
            }).find("rlft lm rm: --batch 8 is not divisible by --grad-accum 16"),
            std::string::npos)
      << error_of([&] { train_reward_model(r); });
  for (const char* name : {"bad-sft", "bad-dpo", "bad-rm"})
    EXPECT_FALSE(std::filesystem::exists(*dir_ + "/" + name)) << name;
  // The step function itself refuses an uneven cut.
  const LoadedModel lm = load_policy(*dir_ + "/sft");
  const std::unique_ptr<Task> task = make_task(rlft::testing::tiny_reviews());
  std::vector<const Example*> six;
  for (size_t i = 0; i < 6; ++i) six.push_back(&task->examples(Split::train)[i]);
  EXPECT_NE(error_of([&] {
              sft_gradient(*lm.model, lm.tokenizer, six, true, 4);
            }).find("6 examples are not divisible into 4 micro-batches"),
            std::string::npos);
}
