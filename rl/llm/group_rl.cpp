// Group-relative RL loop (see group_rl.h): rollout → rewards → advantages → minibatch updates →
// log.
#include "rl/llm/group_rl.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <numeric>
#include <tuple>

#include "engine/checkpoint.h"
#include "engine/error.h"
#include "engine/fs.h"
#include "engine/optim.h"
#include "models/generate.h"
#include "models/gpt.h"
#include "rl/llm/lm.h"
#include "rl/llm/objectives/dapo.h"
#include "rl/llm/objectives/dcpo.h"
#include "rl/llm/objectives/dr_grpo.h"
#include "rl/llm/objectives/grpo.h"
#include "rl/llm/objectives/gspo.h"
#include "rl/llm/objectives/gspo_token.h"
#include "rl/llm/objectives/rloo.h"
#include "rl/llm/sft.h"
#include "rl/plot.h"
#include "rl/run.h"

namespace rlft::llm {

// ---- config ----------------------------------------------------------------------------------

std::string default_group_rl_run_name(const GroupRLConfig& c) {
  std::string base = c.init;
  while (base.size() > 1 && base.back() == '/') base.pop_back();
  return c.algo + "-" + std::filesystem::path(base).stem().string();
}

json::Value to_json(const GroupRLConfig& c) {
  json::Value v = json::Value::object();
  v.set("algo", c.algo);
  v.set("init", c.init);
  // Task keys under SFT's names, so `rlft lm eval` finds the task of an RL run.
  set_task_keys(v, c.task);
  v.set("train_prompts", c.train_prompts);
  v.set("prompts", c.prompts);
  v.set("group_size", c.group_size);
  v.set("max_new_tokens", c.max_new_tokens);
  v.set("temperature", c.temperature);
  v.set("reward_correct", c.reward_correct);
  v.set("reward_wrong", c.reward_wrong);
  v.set("format_reward", c.format_reward);
  v.set("epsilon", c.epsilon);
  v.set("epsilon_high", c.epsilon_high);
  v.set("dual_clip", c.dual_clip);
  v.set("ratio_level", c.ratio_level);
  v.set("aggregation", c.aggregation);
  v.set("beta", c.beta);
  v.set("kl", c.kl);
  v.set("scale_by_std", c.scale_by_std);
  v.set("dynamic_sampling", c.dynamic_sampling);
  v.set("max_extra_rounds", c.max_extra_rounds);
  v.set("overlong_shaping", c.overlong_shaping);
  v.set("overlong_max", c.overlong_max);
  v.set("overlong_cache", c.overlong_cache);
  v.set("dcpo_r_max", c.dcpo_r_max);
  v.set("steps", c.steps);
  v.set("minibatches", c.minibatches);
  v.set("epochs", c.epochs);
  v.set("grad_accum", c.grad_accum);
  v.set("lr", c.lr);
  v.set("lr_schedule", c.lr_schedule);
  v.set("min_lr_ratio", c.min_lr_ratio);
  v.set("weight_decay", c.weight_decay);
  v.set("beta1", c.beta1);
  v.set("beta2", c.beta2);
  v.set("grad_clip", c.grad_clip);
  v.set("eval_every", c.eval_every);
  v.set("eval_prompts", c.eval_prompts);
  v.set("out_dir", c.out_dir);
  v.set("name", c.name);
  v.set("seed", c.seed);
  v.set("checkpoint_every", c.checkpoint_every);
  v.set("resume", c.resume);
  v.set("stop_after", c.stop_after);
  v.set("quiet", c.quiet);
  v.set("device", c.device);
  return v;
}

const std::vector<std::string>& group_rl_algorithms() {
  static const std::vector<std::string> a = {"grpo",       "dr-grpo", "dapo", "gspo",
                                             "gspo-token", "dcpo",    "rloo"};
  return a;
}

GroupRLConfig group_rl_defaults(const std::string& algo) {
  GroupRLConfig c;
  c.algo = algo;
  if (algo == "grpo")
    grpo_defaults(c);
  else if (algo == "dr-grpo")
    dr_grpo_defaults(c);
  else if (algo == "dapo")
    dapo_defaults(c);
  else if (algo == "gspo")
    gspo_defaults(c);
  else if (algo == "gspo-token")
    gspo_token_defaults(c);
  else if (algo == "dcpo")
    dcpo_defaults(c);
  else if (algo == "rloo")
    rloo_defaults(c);
  else
    throw Error(str("group RL: unknown algorithm '", algo,
                    "' (expected grpo, dr-grpo, dapo, gspo, gspo-token, dcpo or rloo)"));
  return c;
}

kernels::Aggregation parse_aggregation(const std::string& s) {
  using A = kernels::Aggregation;
  for (A a : {A::token_mean, A::seq_mean_token_mean, A::seq_mean_token_sum, A::constant_norm,
              A::only_token_mean})
    if (s == kernels::aggregation_name(a)) return a;
  throw Error(str("--aggregation: unknown mode '", s,
                  "' (token_mean, seq_mean_token_mean, seq_mean_token_sum, constant_norm, "
                  "only_token_mean)"));
}

kernels::RatioLevel parse_ratio_level(const std::string& s) {
  if (s == "token") return kernels::RatioLevel::token;
  if (s == "sequence") return kernels::RatioLevel::sequence;
  if (s == "sequence_token") return kernels::RatioLevel::sequence_token;
  throw Error(str("--ratio-level: unknown level '", s, "' (token, sequence, sequence_token)"));
}

KLPlacement parse_kl(const std::string& s) {
  if (s == "none") return KLPlacement::none;
  if (s == "loss_k3") return KLPlacement::loss_k3;
  if (s == "reward_k1") return KLPlacement::reward_k1;
  throw Error(str("--kl: unknown placement '", s, "' (none, loss_k3, reward_k1)"));
}

std::unique_ptr<Objective> make_objective(const GroupRLConfig& c) {
  std::unique_ptr<Objective> o;
  const std::string& a = c.algo;
  if (a == "grpo")
    o = make_grpo(c);
  else if (a == "dr-grpo")
    o = make_dr_grpo(c);
  else if (a == "dapo")
    o = make_dapo(c);
  else if (a == "gspo")
    o = make_gspo(c);
  else if (a == "gspo-token")
    o = make_gspo_token(c);
  else if (a == "dcpo")
    o = make_dcpo(c);
  else if (a == "rloo")
    o = make_rloo(c);
  else
    group_rl_defaults(a);  // throws with the list of algorithms
  LossSettings& l = o->loss;
  l.level = parse_ratio_level(c.ratio_level);
  l.aggregation = parse_aggregation(c.aggregation);
  l.eps_low = c.epsilon;
  l.eps_high = c.epsilon_high;
  l.dual_clip = c.dual_clip;
  l.dcpo_bounds = a == "dcpo";
  l.dcpo_r_max = c.dcpo_r_max;
  l.kl = parse_kl(c.kl);
  l.beta = c.beta;
  l.normalizer =
      l.aggregation == kernels::Aggregation::constant_norm ? double(c.max_new_tokens) : 0.0;
  RLFT_CHECK(!(l.dcpo_bounds && l.level == kernels::RatioLevel::sequence),
             "dcpo: per-token bounds need --ratio-level token or sequence_token");
  return o;
}

double micro_batch_weight(const LossSettings& ls, int64_t micro_rows, int64_t rows,
                          double micro_tokens, double tokens) {
  RLFT_CHECK(micro_rows > 0 && micro_rows <= rows, "micro_batch_weight: ", micro_rows,
             " rows of a minibatch of ", rows);
  using A = kernels::Aggregation;
  switch (ls.aggregation) {
    case A::token_mean:
      return ls.normalizer > 0 ? 1.0 : (tokens > 0 ? micro_tokens / tokens : 0.0);
    case A::seq_mean_token_mean:
    case A::seq_mean_token_sum:
      return ls.normalizer > 0 ? 1.0 : double(micro_rows) / double(rows);
    case A::constant_norm:  // 1/(B·L): B is always the batch's own row count
      return double(micro_rows) / double(rows);
    case A::only_token_mean:
      return 1.0;
  }
  return 1.0;
}

RatioClipResult policy_loss(const LossSettings& ls, const Tensor& log_probs,
                            const Tensor& old_log_probs, const Tensor& ref_log_probs,
                            const Tensor& advantages, const Tensor& mask) {
  RatioClipOptions ro;
  ro.eps_low = ls.eps_low;
  ro.eps_high = ls.eps_high;
  ro.dual_clip = ls.dual_clip;
  ro.level = ls.level;
  ro.aggregation = ls.aggregation;
  ro.normalizer = ls.normalizer;
  if (ls.dcpo_bounds)  // DCPO: bounds from q = exp(old_logp), per token
    std::tie(ro.lower, ro.upper) =
        dcpo_bound_tensors(old_log_probs, ls.eps_low, ls.eps_high, ls.dcpo_r_max);
  RatioClipResult rc = ratio_clip(log_probs, old_log_probs, advantages, mask, ro);
  if (ls.kl == KLPlacement::loss_k3 && ls.beta > 0) {  // GRPO: J −= β·k3 (arXiv 2402.03300 eq. 3–4)
    // masked before exp so padding cannot overflow: d = 0 there and k3 = 0
    const Tensor kl = k3_kl(log_probs * mask, ref_log_probs * mask);
    rc.loss = rc.loss + ls.beta * aggregate(kl, mask, ls.aggregation, ls.normalizer);
  }
  return rc;
}

// ---- shared pieces ---------------------------------------------------------------------------

ReferenceKL reference_kl(const Tensor& old_log_probs, const Tensor& ref_log_probs,
                         const Tensor& mask) {
  RLFT_CHECK(old_log_probs.dim() == 2 && ref_log_probs.shape() == old_log_probs.shape() &&
                 mask.shape() == old_log_probs.shape(),
             "reference_kl: log-probs ", old_log_probs.shape(), ", reference ",
             ref_log_probs.shape(), " and mask ", mask.shape(), " must be the same [B, T]");
  const int64_t B = old_log_probs.size(0), T = old_log_probs.size(1);
  const std::vector<double> olv = old_log_probs.to_vector(), rlv = ref_log_probs.to_vector(),
                            mv = mask.to_vector();
  ReferenceKL r;
  r.k1.assign(size_t(B), 0.0);
  double k3 = 0, tokens = 0;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t) {
      const size_t k = size_t(b * T + t);
      if (mv[k] == 0) continue;
      const double d = olv[k] - rlv[k];
      r.k1[size_t(b)] += d;
      k3 += std::exp(-d) - 1 + d;
      tokens += 1;
    }
  r.k3_token_mean = k3 / std::max(tokens, 1.0);
  return r;
}

Tensor k3_kl(const Tensor& log_probs, const Tensor& ref_log_probs) {
  const Tensor d = log_probs - ref_log_probs;
  return exp(-d) - 1.0 + d;
}

Tensor aggregate(const Tensor& per_token, const Tensor& mask, kernels::Aggregation mode,
                 double normalizer) {
  RLFT_CHECK(per_token.dim() == 2 && mask.shape() == per_token.shape(), "aggregate: per_token ",
             per_token.shape(), " and mask ", mask.shape(), " must be the same [B, T]");
  const int64_t B = per_token.size(0), T = per_token.size(1);
  const std::vector<double> m = mask.to_vector();
  std::vector<double> len(size_t(B), 0.0);
  double tokens = 0;
  for (int64_t i = 0; i < B; ++i)
    for (int64_t t = 0; t < T; ++t) len[size_t(i)] += m[size_t(i * T + t)];
  for (double x : len) tokens += x;
  // Loss = Σ_i coef_i · Σ_t m·l (kernels/ratio_clip.h's table).
  std::vector<double> coef(size_t(B), 0.0);
  using A = kernels::Aggregation;
  for (int64_t i = 0; i < B; ++i) {
    const double n = len[size_t(i)];
    double c = 0;
    switch (mode) {
      case A::token_mean: {
        const double D = normalizer > 0 ? normalizer : tokens;
        c = D > 0 ? 1.0 / D : 0.0;
        break;
      }
      case A::seq_mean_token_mean: {
        const double S = normalizer > 0 ? normalizer : double(B);
        c = n > 0 ? 1.0 / (S * n) : 0.0;
        break;
      }
      case A::seq_mean_token_sum:
        c = 1.0 / (normalizer > 0 ? normalizer : double(B));
        break;
      case A::constant_norm:
        c = 1.0 / (double(B) * (normalizer > 0 ? normalizer : double(T)));
        break;
      case A::only_token_mean:
        c = n > 0 ? 1.0 / n : 0.0;
        break;
    }
    coef[size_t(i)] = c;
  }
  const Tensor row_sums = sum(per_token * mask.to(per_token.dtype()), {1});  // [B]
  return sum(row_sums *
             Tensor::from_vector(coef, {B}).to(per_token.dtype()).to(per_token.device()));
}

std::pair<Tensor, Tensor> log_probs_and_entropy(models::GPT& model, const Tensor& tokens,
                                                const Tensor& attention_mask, double temperature) {
  const int64_t B = tokens.size(0), T = tokens.size(1);
  RLFT_CHECK(T >= 2, "log_probs_and_entropy: need at least 2 tokens per row, got ", tokens.shape());
  const Tensor hidden = model.forward(tokens, attention_mask);
  const Tensor logits = model.lm_logits(hidden.narrow(1, 0, T - 1));
  auto [lp, ent] = softmax_logprob(logits, tokens.narrow(1, 1, T - 1), temperature);
  const Tensor zero = Tensor::zeros({B, 1}, lp.dtype(), lp.device());
  return {concat({zero, lp}, 1), concat({zero, ent}, 1)};
}

// ---- the loop --------------------------------------------------------------------------------

namespace {

// One sampled response with everything the update needs.
struct Sample {
  int64_t prompt = 0;                 // index into the train prompt list (the stable prompt id)
  std::vector<int64_t> prompt_ids;    // BOS prompt
  std::vector<int64_t> response_ids;  // generated tokens (EOS included when emitted)
  double reward = 0;                  // task (+ format + overlong) reward, before any KL term
  bool correct = false;
};

// A batch of samples laid out as generate() does: [PAD… BOS prompt | response PAD…].
struct Batch {
  Tensor tokens, attention_mask, response_mask;  // [B, T]
};

Batch make_batch(const std::vector<Sample>& samples, int64_t pad_id, Device device) {
  int64_t Tp = 0, S = 1;
  for (const Sample& s : samples) {
    Tp = std::max<int64_t>(Tp, int64_t(s.prompt_ids.size()));
    S = std::max<int64_t>(S, int64_t(s.response_ids.size()));
  }
  const int64_t B = int64_t(samples.size()), T = Tp + S;
  std::vector<int64_t> tok(size_t(B * T), pad_id);
  std::vector<float> am(size_t(B * T), 0.f), rm(size_t(B * T), 0.f);
  for (int64_t b = 0; b < B; ++b) {
    const Sample& s = samples[size_t(b)];
    const int64_t off = Tp - int64_t(s.prompt_ids.size());
    for (size_t k = 0; k < s.prompt_ids.size(); ++k) {
      tok[size_t(b * T + off) + k] = s.prompt_ids[k];
      am[size_t(b * T + off) + k] = 1.f;
    }
    for (size_t k = 0; k < s.response_ids.size(); ++k) {
      tok[size_t(b * T + Tp) + k] = s.response_ids[k];
      am[size_t(b * T + Tp) + k] = rm[size_t(b * T + Tp) + k] = 1.f;
    }
  }
  return {Tensor::from_vector(tok, {B, T}).to(device), Tensor::from_vector(am, {B, T}).to(device),
          Tensor::from_vector(rm, {B, T}).to(device)};
}

// "82<|eos|>" or "-33<|eos|>": an integer and EOS (the format reward).
bool well_formatted(const std::string& text, const std::string& eos_text) {
  if (text.size() <= eos_text.size() ||
      text.compare(text.size() - eos_text.size(), eos_text.size(), eos_text) != 0)
    return false;
  const std::string body = text.substr(0, text.size() - eos_text.size());
  size_t i = body[0] == '-' ? 1 : 0;
  if (i >= body.size()) return false;
  for (; i < body.size(); ++i)
    if (body[i] < '0' || body[i] > '9') return false;
  return true;
}

// a·b for positive counts, saturating instead of overflowing.
int64_t product(int64_t a, int64_t b) { return a > INT64_MAX / b ? INT64_MAX : a * b; }

// Far beyond any rollout that fits in memory: a larger --prompts x --group is a typo.
constexpr int64_t kMaxResponsesPerStep = int64_t(1) << 24;

double greedy_accuracy(models::GPT& model, const models::Tokenizer& tok, const Task& task,
                       const std::vector<std::string>& prompts, int64_t max_new_tokens) {
  if (prompts.empty()) return -1;
  models::SamplingConfig sc;
  sc.greedy = true;
  sc.max_new_tokens = max_new_tokens;
  Generator gen(0);
  return task.sample_metrics(prompts, sample_responses(model, tok, prompts, sc, gen))
      .at("exact_match");
}

}  // namespace

void check_group_rl_config(const GroupRLConfig& c) {
  const std::string cmd = "rlft lm " + c.algo + ": ";
  group_rl_defaults(c.algo);  // an unknown algorithm: the list of known ones
  RLFT_CHECK(!c.init.empty(), cmd, "--init <SFT run> is required");
  const double inf = HUGE_VAL;
  // rl::check_number with this command's prefix: `v` finite and in [lo, hi] (lo excluded when
  // open_lo), else "<cmd><flag> must be <what>, got <v>".
  auto number = [&](const char* flag, double v, double lo, bool open_lo, double hi,
                    const char* what) { rl::check_number(cmd, flag, v, lo, open_lo, hi, what); };
  // [0, 1): the largest double below 1 is the closed upper end.
  const double below_one = std::nextafter(1.0, 0.0);
  RLFT_CHECK(c.train_prompts >= 0, cmd, "--train-prompts must be >= 0 (0: all), got ",
             c.train_prompts);
  RLFT_CHECK(c.prompts > 0, cmd, "--prompts must be positive, got ", c.prompts);
  RLFT_CHECK(c.group_size >= 2, cmd,
             "--group must be at least 2 (advantages compare a response with its group), got ",
             c.group_size);
  RLFT_CHECK(c.max_new_tokens >= 0, cmd, "--max-new-tokens must be >= 0 (0: from the task), got ",
             c.max_new_tokens);
  number("--temperature", c.temperature, 0, true, inf, "a finite number > 0");
  number("--reward-correct", c.reward_correct, -inf, false, inf, "a finite number");
  number("--reward-wrong", c.reward_wrong, -inf, false, inf, "a finite number");
  number("--format-reward", c.format_reward, -inf, false, inf, "a finite number");
  // Reversed rewards train the policy away from correct answers; equal ones, without a format
  // reward, give every group zero advantage (nothing is learned). Equal ones with a format
  // reward train the format alone, which is a choice.
  RLFT_CHECK(c.reward_correct > c.reward_wrong ||
                 (c.reward_correct == c.reward_wrong && c.format_reward != 0),
             cmd, "--reward-correct (", c.reward_correct, ") must be greater than --reward-wrong (",
             c.reward_wrong, "): the verifier's reward would not prefer a correct answer",
             c.reward_correct == c.reward_wrong
                 ? " (equal rewards learn only with a --format-reward)"
                 : "");
  number("--epsilon", c.epsilon, 0, false, 1, "in [0, 1] (the ratio's lower clip 1 - eps)");
  number("--epsilon-high", c.epsilon_high, 0, false, inf, "a finite number >= 0");
  // Not a range: 0 (off) or c > 1 (ppo.cpp's --dual-clip check).
  RLFT_CHECK(c.dual_clip == 0 || (std::isfinite(c.dual_clip) && c.dual_clip > 1), cmd,
             "--dual-clip must be 0 (off) or a constant c > 1, got ", c.dual_clip);
  const kernels::RatioLevel level = parse_ratio_level(c.ratio_level);
  parse_aggregation(c.aggregation);
  parse_kl(c.kl);
  RLFT_CHECK(!(c.algo == "dcpo" && level == kernels::RatioLevel::sequence),
             "dcpo: per-token bounds need --ratio-level token or sequence_token");
  number("--beta", c.beta, 0, false, inf, "a finite number >= 0");
  // A coefficient nothing multiplies would be recorded in config.json as if it had trained.
  RLFT_CHECK(parse_kl(c.kl) != KLPlacement::none || c.beta == 0, cmd, "--beta ", c.beta,
             " has no effect with --kl none: give --kl loss_k3 or reward_k1, or --beta 0");
  RLFT_CHECK(c.max_extra_rounds >= 0, cmd, "--max-extra-rounds must be >= 0, got ",
             c.max_extra_rounds);
  RLFT_CHECK(c.overlong_max >= 0, cmd, "--overlong-max must be >= 0 (0: --max-new-tokens), got ",
             c.overlong_max);
  RLFT_CHECK(c.overlong_cache > 0, cmd, "--overlong-cache must be positive, got ",
             c.overlong_cache);
  RLFT_CHECK(c.overlong_max == 0 || c.overlong_cache <= c.overlong_max, cmd, "--overlong-cache ",
             c.overlong_cache, " exceeds --overlong-max ", c.overlong_max);
  number("--dcpo-r-max", c.dcpo_r_max, 1, true, inf,
         "a finite number > 1 (it caps the ratio bounds around 1)");
  RLFT_CHECK(c.steps > 0, cmd, "--steps must be positive, got ", c.steps);
  const int64_t batch = product(c.prompts, c.group_size);
  RLFT_CHECK(batch <= kMaxResponsesPerStep, cmd, "--prompts x --group = ", c.prompts, " x ",
             c.group_size, " responses per step is more than ", kMaxResponsesPerStep);
  RLFT_CHECK(c.minibatches > 0 && c.minibatches <= batch, cmd,
             "--minibatches must be in [1, prompts x group = ", batch, "], got ", c.minibatches);
  RLFT_CHECK(c.epochs > 0, cmd, "--epochs must be positive, got ", c.epochs);
  RLFT_CHECK(c.grad_accum > 0 && product(c.grad_accum, c.minibatches) <= batch, cmd,
             "--grad-accum must be in [1, prompts x group / minibatches = ", batch / c.minibatches,
             "], got ", c.grad_accum);
  number("--lr", c.lr, 0, true, inf, "a finite number > 0");
  optim::LRSchedule::parse(c.lr_schedule);  // throws on an unknown name
  number("--min-lr-ratio", c.min_lr_ratio, 0, false, 1, "in [0, 1]");
  number("--weight-decay", c.weight_decay, 0, false, inf, "a finite number >= 0");
  number("--beta1", c.beta1, 0, false, below_one, "in [0, 1)");
  number("--beta2", c.beta2, 0, false, below_one, "in [0, 1)");
  number("--grad-clip", c.grad_clip, 0, false, inf, "a finite number >= 0 (0: off)");
  RLFT_CHECK(c.eval_every >= 0, cmd, "--eval-every must be >= 0 (0: only at the end), got ",
             c.eval_every);
  RLFT_CHECK(c.eval_prompts >= 0, cmd, "--eval-prompts must be >= 0 (0: none), got ",
             c.eval_prompts);
  rl::check_checkpoint_options(cmd, c.checkpoint_every, c.stop_after);
  if (!c.name.empty()) rl::run_path(c.out_dir, c.name);  // the name and --out-dir, checked
}

namespace {

// The loop's state in a checkpoint's group_rl_state, read and checked whole before the run
// writes anything (a corrupted or foreign checkpoint is one error naming the file and field).
struct ResumeState {
  uint64_t sample_offset = 0, shuffle_offset = 0, order_gen_offset = 0;
  int64_t order_offset = -1;
  size_t order_pos = 0;
  double generated_samples = 0, generated_tokens = 0;
  json::Value objective;
};

ResumeState parse_resume_state(const std::string& text, const std::string& ckpt,
                               size_t train_prompts) {
  const rl::StateReader st(text, ckpt, "group_rl_state");
  ResumeState r;
  r.sample_offset = uint64_t(st.integer("sample_offset"));
  r.shuffle_offset = uint64_t(st.integer("shuffle_offset"));
  r.order_gen_offset = uint64_t(st.integer("order_gen_offset"));
  r.order_offset = st.integer("order_offset", -1);
  // Within the current pass over the prompts (== their count: the pass is finished); before the
  // first pass (order_offset -1) it is 0.
  r.order_pos = size_t(st.integer("order_pos", 0, r.order_offset < 0 ? 0 : int64_t(train_prompts)));
  r.generated_samples = st.finite("generated_samples", 0);
  r.generated_tokens = st.finite("generated_tokens", 0);
  r.objective = st.field("objective");
  RLFT_CHECK(r.objective.is_null() || r.objective.is_object(), st.where(),
             ": field 'objective' must be null or an object, got ", r.objective.dump());
  return r;
}

}  // namespace

GroupRLResult train_group_rl(const GroupRLConfig& cfg_in) {
  GroupRLConfig cfg = cfg_in;
  check_group_rl_config(cfg);
  const Device dev = rl::resolve_device(cfg.device);
  if (cfg.name.empty()) cfg.name = default_group_rl_run_name(cfg);
  const std::string run_dir = rl::run_path(cfg.out_dir, cfg.name);
  const json::Value recorded = recorded_config(cfg.resume ? run_dir : "");
  // The input from the root: a resume from another directory reads the same run.
  cfg.init = recorded_input_path(cfg.init, "init", recorded);
  // A resume reads the SFT run the run started with: checked before it is read.
  const json::Value fingerprints = fingerprint_inputs({run_input("--init", cfg.init)}, recorded);
  const LoadedModel init = load_policy(cfg.init, dev);
  if (!init.run_config.is_null())
    cfg.task = sft_config_from_json(init.run_config, init.path + ": metadata run_config").task;
  // The task keys no option sets: the init run's, else (a resume) this run's record, else the
  // data's (a jsonl file's fingerprint, so a resumed run names a changed file as such).
  const std::unique_ptr<Task> task = make_run_task(cfg.task, cfg.resume ? run_dir : "");
  RLFT_CHECK(
      task->has_verifier(), "--init ", cfg.init, ": a run of task ", task->name(),
      ", which has no verifier: group RL needs a verifiable reward (an arith or jsonl SFT run)");
  models::GPT& policy = *init.model;
  const models::Tokenizer& tok = init.tokenizer;
  const std::shared_ptr<models::GPT> reference = load_policy(cfg.init, dev).model;  // frozen π_ref
  reference->eval();
  for (Tensor& p : reference->parameters()) p.set_requires_grad(false);

  std::vector<std::string> train_prompts = task->prompts(Split::train);
  if (cfg.train_prompts > 0 && size_t(cfg.train_prompts) < train_prompts.size())
    train_prompts.resize(size_t(cfg.train_prompts));
  RLFT_CHECK(!train_prompts.empty(), cfg.init, ": its task has no train prompts");
  RLFT_CHECK(cfg.prompts <= int64_t(train_prompts.size()), "rlft lm ", cfg.algo, ": --prompts ",
             cfg.prompts, " exceeds the ", train_prompts.size(),
             " train prompts (each step draws distinct prompts; see --train-prompts)");
  std::vector<std::string> eval_prompts = task->prompts(Split::validation);
  if (eval_prompts.size() > size_t(cfg.eval_prompts)) eval_prompts.resize(size_t(cfg.eval_prompts));
  if (cfg.max_new_tokens <= 0)
    cfg.max_new_tokens = response_budget(tok, task->examples(Split::train), 500);
  models::SamplingConfig sc;
  sc.max_new_tokens = cfg.max_new_tokens;
  sc = clamp_to_context(sc, policy, tok, train_prompts);
  cfg.max_new_tokens = sc.max_new_tokens;
  sc.temperature = cfg.temperature;
  sc.eos_id = tok.eos_id();
  sc.pad_id = tok.pad_id();
  const int64_t overlong_max = cfg.overlong_max > 0 ? cfg.overlong_max : cfg.max_new_tokens;
  RLFT_CHECK(!cfg.overlong_shaping || cfg.overlong_cache <= overlong_max, "--overlong-cache ",
             cfg.overlong_cache, " exceeds L_max ", overlong_max);
  // A response is at most max_new_tokens long: a shaping that starts past it never applies.
  RLFT_CHECK(!cfg.overlong_shaping || overlong_max - cfg.overlong_cache < cfg.max_new_tokens,
             "--overlong-shaping: L_max ", overlong_max, " − --overlong-cache ", cfg.overlong_cache,
             " = ", overlong_max - cfg.overlong_cache, " is not below the generation budget ",
             cfg.max_new_tokens,
             " (--max-new-tokens, within the context): no response would be "
             "penalised");

  std::unique_ptr<Objective> objective = make_objective(cfg);
  const LossSettings& ls = objective->loss;

  optim::AdamW opt(policy.parameters(), cfg.lr, cfg.beta1, cfg.beta2, 1e-8, cfg.weight_decay);
  opt.set_weight_decay_mask(optim::matrices_decay(policy.parameters()));  // as lm sft's groups
  optim::LRSchedule schedule;  // a function of the step only, so a resumed run follows it too
  schedule.kind = optim::LRSchedule::parse(cfg.lr_schedule);
  schedule.base_lr = cfg.lr;
  schedule.end_lr = cfg.lr * cfg.min_lr_ratio;
  schedule.total = cfg.steps;
  if (!cfg.resume) rl::check_not_the_run(run_dir, {{"--init", cfg.init}});
  json::Value config_json = to_json(cfg);
  // A resume: the same settings as the run was started with; only --steps may grow.
  const std::vector<std::string> resume_free = {"steps"};
  const rl::RunDir run = rl::open_run(run_dir, cfg.resume, config_json, resume_free);
  record_fingerprints(config_json, fingerprints);
  const std::string ckpt = run.path("checkpoint.safetensors");
  ResumeState resumed;  // the loop's state in the checkpoint when resuming, checked
  int64_t start = 0;
  std::vector<json::Value> kept_metrics;  // metrics.jsonl up to the checkpoint's step
  if (cfg.resume) {
    const Metadata meta =
        load_training_checkpoint(ckpt, policy, opt, tok, "--init " + cfg.init, "group_rl_state",
                                 "not a group RL training checkpoint (no group_rl_state)");
    // The settings the checkpoint was trained with, against config.json's (edited by hand?).
    if (meta.count("run_config"))
      rl::check_checkpoint_settings(json::parse(meta.at("run_config"), ckpt + ":run_config"),
                                    config_json, resume_free, ckpt);
    resumed = parse_resume_state(meta.at("group_rl_state"), ckpt, train_prompts.size());
    start = metadata_int(meta, "step", ckpt);
    RLFT_CHECK(start <= cfg.steps, ckpt, ": checkpoint is at step ", start, ", beyond --steps ",
               cfg.steps);
    try {
      objective->load_state(resumed.objective);
    } catch (const Error& e) {
      throw Error(str(ckpt, ": group_rl_state: field 'objective': ", e.what()));
    }
    // The metrics logged so far rebuild the curves: each kept line checked before the file is
    // rewritten (rl::RunDir::keep_metrics_through names the file and the entry).
    kept_metrics = run.keep_metrics_through(start, "step", [](const json::Value& line) {
      for (const char* key : {"step", "reward_mean", "accuracy"}) {
        const json::Value* v = line.find(key);
        RLFT_CHECK(v != nullptr && v->is_number() && std::isfinite(v->as_double()), "'", key,
                   "' must be a finite number, got ", v ? v->brief() : std::string("(none)"));
      }
      for (const char* key : {"eval_accuracy_start", "eval_accuracy", "elapsed_seconds"}) {
        const json::Value* v = line.find(key);
        RLFT_CHECK(v == nullptr || v->is_number(), "'", key, "' must be a number, got ",
                   v ? v->brief() : std::string());
      }
    });
  }
  run.write_config(config_json);  // a fresh run: the old run's checkpoint and metrics go
  if (!cfg.quiet) {
    std::printf("rlft lm %s — %s (objective %s, %zu train prompts, %.3fM parameters)\n",
                cfg.algo.c_str(), run.dir().c_str(), objective->name().c_str(),
                train_prompts.size(), double(policy.num_parameters()) / 1e6);
    for (const auto& [k, v] : config_json.as_object())
      std::printf("  %-18s %s\n", k.c_str(), v.dump().c_str());
    std::fflush(stdout);
  }

  GroupRLResult result;
  result.run_dir = run.dir();
  result.start_step = result.steps = start;
  const rl::Stopwatch clock;
  // Every random stream is realigned to a Philox block at the start of each step (align_to_block),
  // so the whole state of the loop between steps is these counters, and a resumed run draws exactly
  // what the uninterrupted one would have.
  Generator sample_gen(cfg.seed ^ 0x9a11e5ull), order_gen(cfg.seed ^ 0x0dd5ull),
      shuffle_gen(cfg.seed ^ 0x5bu);
  std::vector<size_t> order;
  size_t order_pos = 0;
  int64_t order_offset = -1;  // order_gen's counter when the current pass was shuffled
  auto shuffle_pass = [&]() {
    order.resize(train_prompts.size());
    std::iota(order.begin(), order.end(), 0);
    for (size_t i = order.size(); i > 1; --i)
      std::swap(order[i - 1], order[size_t(order_gen.below(i))]);
  };
  auto next_prompt = [&]() {
    if (order_pos == order.size()) {  // a new pass over the prompts, freshly shuffled
      order_gen.align_to_block();
      order_offset = int64_t(order_gen.offset());
      shuffle_pass();
      order_pos = 0;
    }
    return order[order_pos++];
  };
  const std::string eos_text = tok.decode({tok.eos_id()});

  // G responses to each of `n` fresh prompts, with their rewards.
  auto rollout = [&](int64_t n) {
    std::vector<size_t> ids;
    std::vector<std::string> rows;
    for (int64_t k = 0; k < n; ++k) {
      ids.push_back(next_prompt());
      for (int64_t g = 0; g < cfg.group_size; ++g) rows.push_back(train_prompts[ids.back()]);
    }
    const PromptBatch pb = make_prompt_batch(tok, rows);
    const models::Generation gen = models::generate(policy, pb.tokens, pb.mask, sc, sample_gen);
    const int64_t B = gen.tokens.size(0), T = gen.tokens.size(1), Tp = gen.prompt_length;
    const std::vector<int64_t> all = gen.tokens.to_int_vector();
    const std::vector<double> rm = gen.response_mask.to_vector(), pm = pb.mask.to_vector();
    std::vector<Sample> out(static_cast<size_t>(B));
    for (int64_t b = 0; b < B; ++b) {
      Sample& s = out[size_t(b)];
      s.prompt = int64_t(ids[size_t(b / cfg.group_size)]);
      for (int64_t t = 0; t < Tp; ++t)
        if (pm[size_t(b * Tp + t)] != 0) s.prompt_ids.push_back(all[size_t(b * T + t)]);
      for (int64_t t = Tp; t < T; ++t)
        if (rm[size_t(b * T + t)] != 0) s.response_ids.push_back(all[size_t(b * T + t)]);
      const std::string text = tok.decode(s.response_ids);
      s.correct = task->score(rows[size_t(b)], text) > 0.5;
      s.reward = s.correct ? cfg.reward_correct : cfg.reward_wrong;
      if (cfg.format_reward != 0 && well_formatted(text, eos_text)) s.reward += cfg.format_reward;
      if (cfg.overlong_shaping)  // DAPO §3.4
        s.reward +=
            overlong_penalty(int64_t(s.response_ids.size()), overlong_max, cfg.overlong_cache);
    }
    return out;
  };

  plot::Series reward_curve{"reward (mean)", {}, {}},
      acc_curve{"accuracy (sampled, train)", {}, {}},
      eval_curve{"accuracy (greedy, validation)", {}, {}};
  // Generation budget so far (every sampled response, dynamic sampling's extra rounds included):
  // methods are compared against these, not only against steps.
  double total_samples = 0, total_tokens = 0, elapsed_before = 0;
  if (cfg.resume) {
    sample_gen.set_state(sample_gen.seed(), resumed.sample_offset);
    shuffle_gen.set_state(shuffle_gen.seed(), resumed.shuffle_offset);
    order_offset = resumed.order_offset;
    if (order_offset >= 0) {  // redraw the current pass, then continue it where it stopped
      order_gen.set_state(order_gen.seed(), uint64_t(order_offset));
      shuffle_pass();
      order_pos = resumed.order_pos;
    }
    order_gen.set_state(order_gen.seed(), resumed.order_gen_offset);
    total_samples = resumed.generated_samples;
    total_tokens = resumed.generated_tokens;
    // The curves so far, from the metrics up to the checkpoint (later ones, logged before a
    // crash between two checkpoints, were dropped above and are logged again).
    for (const json::Value& line : kept_metrics) {
      const int64_t s = line.at("step").as_int();
      const double x = double(s);
      reward_curve.x.push_back(x), reward_curve.y.push_back(line.at("reward_mean").as_double());
      acc_curve.x.push_back(x), acc_curve.y.push_back(line.at("accuracy").as_double());
      if (line.contains("eval_accuracy_start")) {
        result.eval_accuracy_start = line.at("eval_accuracy_start").as_double();
        eval_curve.x.push_back(0), eval_curve.y.push_back(result.eval_accuracy_start);
      }
      if (line.contains("eval_accuracy")) {
        result.eval_accuracy_end = line.at("eval_accuracy").as_double();
        result.eval_step = s;
        eval_curve.x.push_back(x), eval_curve.y.push_back(result.eval_accuracy_end);
      }
      result.reward_mean.push_back(line.at("reward_mean").as_double());
      result.accuracy.push_back(line.at("accuracy").as_double());
      elapsed_before = line.get_or("elapsed_seconds", elapsed_before);
    }
    if (!cfg.quiet) std::printf("resumed at step %lld from %s\n", (long long)start, ckpt.c_str());
  }
  // A training checkpoint: weights, AdamW state, and the loop's counters (aligned streams).
  auto save = [&](int64_t done) {
    json::Value st = json::Value::object();
    sample_gen.align_to_block(), shuffle_gen.align_to_block(), order_gen.align_to_block();
    st.set("sample_offset", int64_t(sample_gen.offset()));
    st.set("shuffle_offset", int64_t(shuffle_gen.offset()));
    st.set("order_gen_offset", int64_t(order_gen.offset()));
    st.set("order_offset", order_offset);
    st.set("order_pos", int64_t(order_pos));
    st.set("generated_samples", total_samples);
    st.set("generated_tokens", total_tokens);
    st.set("objective", objective->state());
    Metadata meta = checkpoint_metadata(policy.config(), tok, config_json, done);
    meta["group_rl_state"] = st.dump();
    policy.eval();
    run.sync_log();
    save_checkpoint(ckpt, policy, &opt, meta);
    policy.train();
  };
  if (cfg.eval_prompts > 0 && !cfg.resume) {
    result.eval_accuracy_start =
        greedy_accuracy(policy, tok, *task, eval_prompts, cfg.max_new_tokens);
    eval_curve.x.push_back(0);
    eval_curve.y.push_back(result.eval_accuracy_start);
    if (!cfg.quiet)
      std::printf("step %4d | eval accuracy (greedy, %zu validation prompts) %.4f\n", 0,
                  eval_prompts.size(), result.eval_accuracy_start);
  }
  const int64_t G = cfg.group_size;
  const int64_t end = cfg.stop_after > 0 ? std::min(cfg.steps, start + cfg.stop_after) : cfg.steps;
  for (int64_t step = start; step < end; ++step) {
    const double t0 = clock.seconds();
    opt.set_lr(schedule.at(step));
    sample_gen.align_to_block(), shuffle_gen.align_to_block(), order_gen.align_to_block();
    // The policy's dropout masks (when its SFT run has dropout) of step s depend on (seed, s)
    // only, as SFT's do: nothing to keep in the checkpoint.
    policy.dropout_generator().set_state(cfg.seed ^ 0xd70c0aull, uint64_t(step) << 32);
    // ---- 1. rollout (+ DAPO's dynamic sampling)
    std::vector<Sample> samples = rollout(cfg.prompts);
    double generated = double(samples.size()), correct = 0, reward_sum = 0, len_sum = 0;
    int64_t len_max = 0, extra_rounds = 0, dropped = 0;
    auto tally = [&](const std::vector<Sample>& ss) {
      for (const Sample& s : ss) {
        correct += s.correct;
        reward_sum += s.reward;
        len_sum += double(s.response_ids.size());
        len_max = std::max<int64_t>(len_max, int64_t(s.response_ids.size()));
      }
    };
    tally(samples);
    if (cfg.dynamic_sampling) {
      std::vector<Sample> kept, pending = std::move(samples);
      for (;;) {
        for (size_t g0 = 0; g0 < pending.size(); g0 += size_t(G)) {
          std::vector<double> r;
          for (int64_t k = 0; k < G; ++k) r.push_back(pending[g0 + size_t(k)].reward);
          if (int64_t(kept.size()) / G < cfg.prompts && group_has_signal(r))
            kept.insert(kept.end(), pending.begin() + long(g0), pending.begin() + long(g0) + G);
          else if (!group_has_signal(r))
            ++dropped;
        }
        if (int64_t(kept.size()) / G >= cfg.prompts || extra_rounds >= cfg.max_extra_rounds) break;
        ++extra_rounds;
        pending = rollout(cfg.prompts);
        generated += double(pending.size());
        tally(pending);
      }
      samples = std::move(kept);
    }
    const int64_t groups = int64_t(samples.size()) / G;
    // Wall seconds of the step's three phases (metrics time_rollout, time_scoring, time_update).
    const double t_rollout = clock.seconds();
    double t_scored = t_rollout;

    json::Value m = json::Value::object();
    m.set("step", step + 1);
    // the start point of the eval curve, so a run's metrics.jsonl alone can be plotted
    if (step == 0 && result.eval_accuracy_start >= 0)
      m.set("eval_accuracy_start", result.eval_accuracy_start);
    m.set("reward_mean", reward_sum / generated);
    m.set("accuracy", correct / generated);
    m.set("response_length_mean", len_sum / generated);
    m.set("response_length_max", len_max);
    m.set("groups", groups);
    total_samples += generated;
    total_tokens += len_sum;
    m.set("generated_samples", int64_t(total_samples));
    m.set("generated_tokens", int64_t(total_tokens));
    if (cfg.dynamic_sampling) {
      m.set("extra_rounds", extra_rounds);
      m.set("groups_dropped", dropped);
    }
    result.reward_mean.push_back(reward_sum / generated);
    result.accuracy.push_back(correct / generated);

    double loss_mean = 0, clip_low = 0, clip_high = 0, tokens_seen = 0, approx_k3 = 0,
           approx_k1 = 0, grad_norm = 0, zero_adv = 0, entropy = 0, kl_ref = 0, kl_ref_k3 = 0;
    double s_sum = 0, s_min = 0, s_max = 0, s_count = 0;
    int64_t updates = 0;
    if (groups > 0) {
      // ---- 2. old and reference log-probs (no gradient)
      const Batch batch = make_batch(samples, tok.pad_id(), dev);
      const int64_t B = batch.tokens.size(0);
      Tensor old_lp, ref_lp;
      {
        NoGradGuard ng;
        policy.eval();
        // π_old's log-probs and entropy at the sampling temperature τ, as the rollout drew
        // from it (the logged entropy is that distribution's, not τ = 1's).
        auto [lp, ent] =
            log_probs_and_entropy(policy, batch.tokens, batch.attention_mask, cfg.temperature);
        old_lp = lp;
        ref_lp = models::sequence_log_probs(*reference, batch.tokens, batch.attention_mask,
                                            cfg.temperature);
        const std::vector<double> e = ent.to_vector(), rmv = batch.response_mask.to_vector();
        double n = 0;
        for (size_t k = 0; k < e.size(); ++k) entropy += e[k] * rmv[k], n += rmv[k];
        entropy /= std::max(n, 1.0);
        policy.train();
      }
      // ---- 3. rewards with the KL term (RLOO) and the KL to the reference for the log
      const ReferenceKL rkl = reference_kl(old_lp, ref_lp, batch.response_mask);
      std::vector<double> rewards(static_cast<size_t>(B));
      for (int64_t b = 0; b < B; ++b) {
        kl_ref += rkl.k1[size_t(b)];
        rewards[size_t(b)] = samples[size_t(b)].reward;
        if (ls.kl == KLPlacement::reward_k1) rewards[size_t(b)] -= ls.beta * rkl.k1[size_t(b)];
      }
      kl_ref /= double(B);
      kl_ref_k3 = rkl.k3_token_mean;
      // ---- 4. advantages, one group at a time
      std::vector<double> adv(static_cast<size_t>(B));
      for (int64_t g = 0; g < groups; ++g) {
        const std::vector<double> r(rewards.begin() + g * G, rewards.begin() + (g + 1) * G);
        const std::vector<double> a =
            objective->advantages(r, uint64_t(samples[size_t(g * G)].prompt));
        bool all_zero = true;
        for (int64_t k = 0; k < G; ++k) {
          adv[size_t(g * G + k)] = a[size_t(k)];
          all_zero = all_zero && a[size_t(k)] == 0;
        }
        zero_adv += all_zero;
      }
      zero_adv /= double(groups);
      const Tensor advantages = Tensor::from_vector(adv, {B}).to(old_lp.dtype()).to(dev);
      t_scored = clock.seconds();
      // ---- 5. minibatch updates: every step after the first is off-policy
      // Dynamic sampling can keep fewer responses than --minibatches asks for parts: then
      // each part is one response (B parts), and the last part takes any remainder.
      const int64_t parts = std::min<int64_t>(cfg.minibatches, B), mb = B / parts;
      for (int64_t epoch = 0; epoch < cfg.epochs; ++epoch) {
        std::vector<int64_t> perm(static_cast<size_t>(B));
        std::iota(perm.begin(), perm.end(), 0);
        for (size_t i = perm.size(); i > 1; --i)
          std::swap(perm[i - 1], perm[size_t(shuffle_gen.below(i))]);
        for (int64_t part = 0; part < parts; ++part) {
          const int64_t lo = part * mb, hi = part + 1 == parts ? B : lo + mb;
          // --grad-accum K: the minibatch in K micro-batches, each loss weighted so that the
          // summed gradients are the whole minibatch's (micro_batch_weight), then one step.
          const std::vector<int64_t> rows(perm.begin() + lo, perm.begin() + hi);
          double mb_tokens = 0;
          for (int64_t r : rows) mb_tokens += double(samples[size_t(r)].response_ids.size());
          const int64_t K = std::min<int64_t>(cfg.grad_accum, hi - lo);
          opt.zero_grad();
          double step_loss = 0;
          for (int64_t k = 0; k < K; ++k) {
            const int64_t a = (hi - lo) * k / K, b = (hi - lo) * (k + 1) / K;
            const std::vector<int64_t> micro(rows.begin() + a, rows.begin() + b);
            double micro_tokens = 0;
            for (int64_t r : micro) micro_tokens += double(samples[size_t(r)].response_ids.size());
            const Tensor idx = Tensor::from_vector(micro, {b - a}).to(dev);
            const Tensor tokens = index_select(batch.tokens, 0, idx);
            const Tensor amask = index_select(batch.attention_mask, 0, idx);
            const Tensor rmask = index_select(batch.response_mask, 0, idx);
            const Tensor old_mb = index_select(old_lp, 0, idx);
            const Tensor logp = models::sequence_log_probs(policy, tokens, amask, cfg.temperature);
            const RatioClipResult rc = policy_loss(ls, logp, old_mb, index_select(ref_lp, 0, idx),
                                                   index_select(advantages, 0, idx), rmask);
            const double w =
                K == 1 ? 1.0 : micro_batch_weight(ls, b - a, hi - lo, micro_tokens, mb_tokens);
            (K == 1 ? rc.loss : rc.loss * w).backward();
            step_loss += rc.loss.item() * w;
            const double nt = rc.stats.tokens;
            clip_low += rc.stats.clip_frac_low * nt;
            clip_high += rc.stats.clip_frac_high * nt;
            approx_k3 += rc.stats.approx_kl_k3 * nt;
            approx_k1 += rc.stats.approx_kl_k1 * nt;
            tokens_seen += nt;
            // GSPO's sequence ratio s_i = exp(mean_t (logp − old_logp)) per row of this step
            const std::vector<double> lv = logp.to_vector(), ov = old_mb.to_vector(),
                                      mv = rmask.to_vector();
            const int64_t Tm = logp.size(1);
            for (int64_t i = 0; i < b - a; ++i) {
              double x = 0, n = 0;
              for (int64_t t = 0; t < Tm; ++t) {
                const size_t q = size_t(i * Tm + t);
                if (mv[q] != 0) x += lv[q] - ov[q], n += 1;
              }
              if (n == 0) continue;
              const double s = std::exp(std::clamp(x / n, -20.0, 20.0));
              s_min = s_count == 0 ? s : std::min(s_min, s);
              s_max = s_count == 0 ? s : std::max(s_max, s);
              s_sum += s;
              s_count += 1;
            }
          }
          // The logged grad_norm is the last optimizer step's, before clipping. Without clipping
          // it is computed for that step only: on a CUDA device the norm is a synchronisation.
          if (cfg.grad_clip > 0)
            grad_norm = optim::clip_grad_norm(opt.params(), cfg.grad_clip);
          else if (epoch + 1 == cfg.epochs && hi == B)  // the last part of the last epoch
            grad_norm = optim::grad_norm(opt.params());
          opt.step();
          ++updates;
          loss_mean += step_loss;
        }
      }
    }
    const double tw = std::max(tokens_seen, 1.0);
    m.set("zero_adv_groups", zero_adv);
    m.set("entropy", entropy);
    m.set("loss", updates ? loss_mean / double(updates) : 0.0);
    m.set("clip_frac_low", clip_low / tw);
    m.set("clip_frac_high", clip_high / tw);
    if (ls.dcpo_bounds) m.set("dcpo_clipped", (clip_low + clip_high) / tw);
    m.set("kl_ref", kl_ref);
    m.set("kl_ref_k3", kl_ref_k3);
    m.set("approx_kl_k3", approx_k3 / tw);
    m.set("approx_kl_k1", approx_k1 / tw);
    m.set("seq_ratio_mean", s_count ? s_sum / s_count : 1.0);
    m.set("seq_ratio_min", s_count ? s_min : 1.0);
    m.set("seq_ratio_max", s_count ? s_max : 1.0);
    if (updates > 0) m.set("grad_norm", grad_norm);  // no update (no group kept): no gradient
    m.set("lr", opt.lr());
    m.set("updates", updates);
    const double now = clock.seconds();
    m.set("time_rollout", t_rollout - t0);
    m.set("time_scoring", t_scored - t_rollout);
    m.set("time_update", now - t_scored);
    m.set("samples_per_second", generated / std::max(now - t0, 1e-9));
    m.set("elapsed_seconds", elapsed_before + now);
    const int64_t done = step + 1;
    reward_curve.x.push_back(double(done));
    reward_curve.y.push_back(reward_sum / generated);
    acc_curve.x.push_back(double(done));
    acc_curve.y.push_back(correct / generated);
    if (!cfg.quiet) {
      const double eta = now / double(done - start) * double(end - done);
      std::printf(
          "step %4lld/%lld | reward %7.4f | acc %.3f | zero-adv %.2f | len %4.1f/%2lld | ent %.3f "
          "| "
          "clip %.3f/%.3f | kl_ref %.4f | s %.4f [%.4f, %.4f]%s | %5.0f samples/s | ETA %s\n",
          (long long)done, (long long)cfg.steps, reward_sum / generated, correct / generated,
          zero_adv, len_sum / generated, (long long)len_max, entropy, clip_low / tw, clip_high / tw,
          kl_ref, s_count ? s_sum / s_count : 1.0, s_count ? s_min : 1.0, s_count ? s_max : 1.0,
          cfg.dynamic_sampling
              ? str(" | extra rounds ", extra_rounds, ", dropped ", dropped).c_str()
              : "",
          generated / std::max(now - t0, 1e-9), rl::format_duration(eta).c_str());
    }
    const bool last = done == cfg.steps;
    const bool stopping = done == end;
    if (cfg.eval_prompts > 0 && ((cfg.eval_every > 0 && done % cfg.eval_every == 0) || last)) {
      const double acc = greedy_accuracy(policy, tok, *task, eval_prompts, cfg.max_new_tokens);
      m.set("eval_accuracy", acc);
      eval_curve.x.push_back(double(done));
      eval_curve.y.push_back(acc);
      result.eval_accuracy_end = acc;
      result.eval_step = done;
      if (!cfg.quiet) std::printf("  eval accuracy (greedy, validation) %.4f\n", acc);
    }
    run.log(m);
    std::fflush(stdout);
    if (stopping || done % 10 == 0) {
      std::vector<plot::Series> series = {reward_curve, acc_curve};
      if (!eval_curve.x.empty()) series.push_back(eval_curve);
      plot::write_line_plot(run.path("reward.svg"),
                            str(cfg.algo, " on ", task->name(), " — ", cfg.name), "update step",
                            "reward / accuracy", series);
    }
    result.steps = done;
    if (stopping || (cfg.checkpoint_every > 0 && done % cfg.checkpoint_every == 0)) save(done);
  }
  if (start == end) save(end);  // resumed a finished run: nothing to do, same checkpoint
  policy.eval();
  result.seconds = clock.seconds();
  return result;
}

}  // namespace rlft::llm
