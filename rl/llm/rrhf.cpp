#include "rl/llm/rrhf.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "engine/checkpoint.h"
#include "engine/error.h"
#include "engine/ops.h"
#include "engine/optim.h"
#include "rl/llm/lm.h"
#include "rl/llm/reward_model.h"
#include "rl/plot.h"
#include "rl/run.h"

namespace rlft::llm {

RRHFLoss rrhf_loss(const Tensor& log_prob_sums, const std::vector<int64_t>& lengths,
                   const std::vector<double>& scores) {
  const int64_t k = log_prob_sums.numel();
  RLFT_CHECK(k >= 1 && int64_t(lengths.size()) == k && int64_t(scores.size()) == k,
             "rrhf_loss: ", k, " log-probs, ", lengths.size(), " lengths, ", scores.size(),
             " scores");
  std::vector<double> inv_len;
  for (int64_t n : lengths) {
    RLFT_CHECK(n > 0, "rrhf_loss: a candidate has no tokens");
    inv_len.push_back(1.0 / double(n));
  }
  const Device dev = log_prob_sums.device();
  const Tensor p =
      mul(log_prob_sums, Tensor::from_vector(inv_len, {k}).to(log_prob_sums.dtype()).to(dev));
  // L_rank = Σ_{R_i < R_j} max(0, p_i − p_j): a [k, k] matrix of p_i − p_j, masked to the pairs.
  std::vector<double> pair_mask(size_t(k * k), 0.0);
  for (int64_t i = 0; i < k; ++i)
    for (int64_t j = 0; j < k; ++j)
      pair_mask[size_t(i * k + j)] = scores[size_t(i)] < scores[size_t(j)];
  const Tensor diff = sub(p.reshape({k, 1}), p.reshape({1, k}));
  const Tensor rank =
      sum(mul(relu(diff), Tensor::from_vector(pair_mask, {k, k}).to(p.dtype()).to(dev)));
  const int64_t best = int64_t(std::max_element(scores.begin(), scores.end()) - scores.begin());
  const Tensor ft = neg(log_prob_sums.narrow(0, best, 1).reshape({}));
  RRHFLoss out;
  out.loss = add(rank, ft);
  out.rank_loss = rank.item();
  out.ft_loss = ft.item();
  return out;
}

json::Value to_json(const RRHFConfig& c) {
  json::Value v = json::Value::object();
  v.set("init", c.init);
  v.set("reward_model", c.reward_model);
  v.set("scorer", c.scorer);
  v.set("steps", c.steps);
  v.set("prompts_per_step", c.prompts_per_step);
  v.set("k", c.k);
  v.set("temperature", c.temperature);
  v.set("lr", c.lr);
  v.set("grad_clip", c.grad_clip);
  v.set("log_every", c.log_every);
  v.set("eval_every", c.eval_every);
  v.set("eval_samples", c.eval_samples);
  v.set("out_dir", c.out_dir);
  v.set("name", c.name);
  v.set("seed", c.seed);
  v.set("device", c.device);
  return v;
}

RRHFResult train_rrhf(const RRHFConfig& cfg) {
  RLFT_CHECK(!cfg.init.empty(), "rlft lm rrhf: --init (an SFT run) is required");
  RLFT_CHECK(cfg.scorer == "rm" || cfg.scorer == "ground_truth",
             "rlft lm rrhf: --scorer must be rm or ground_truth, got '", cfg.scorer, "'");
  RLFT_CHECK(cfg.scorer != "rm" || !cfg.reward_model.empty(),
             "rlft lm rrhf: --reward-model is required with --scorer rm");
  const char* cmd = "rlft lm rrhf: ";
  RLFT_CHECK(cfg.steps > 0, cmd, "--steps must be positive, got ", cfg.steps);
  RLFT_CHECK(cfg.prompts_per_step > 0, cmd, "--prompts-per-step must be positive, got ",
             cfg.prompts_per_step);
  RLFT_CHECK(cfg.k >= 2, cmd, "--k must be at least 2 (candidates are ranked), got ", cfg.k);
  const double inf = HUGE_VAL;
  rl::check_number(cmd, "--temperature", cfg.temperature, 0, true, inf, "a finite number > 0");
  rl::check_number(cmd, "--lr", cfg.lr, 0, true, inf, "a finite number > 0");
  rl::check_number(cmd, "--grad-clip", cfg.grad_clip, 0, false, inf,
                   "a finite number >= 0 (0: off)");
  RLFT_CHECK(cfg.log_every > 0, cmd, "--log-every must be positive, got ", cfg.log_every);
  RLFT_CHECK(cfg.eval_every >= 0, cmd, "--eval-every must be >= 0 (0: only at the end), got ",
             cfg.eval_every);
  RLFT_CHECK(cfg.eval_samples > 0, cmd, "--eval-samples must be positive, got ", cfg.eval_samples);
  // --out-dir and --name, checked before any loading; the run is not its own input.
  rl::check_not_the_run(rl::run_path(cfg.out_dir, cfg.name),
                        {{"--init", cfg.init}, {"--reward-model", cfg.reward_model}});
  const Device dev = rl::resolve_device(cfg.device);
  const LoadedModel policy_run = load_policy(cfg.init, dev), ref_run = load_policy(cfg.init, dev);
  models::GPT& policy = *policy_run.model;
  const models::Tokenizer& tok = policy_run.tokenizer;
  LoadedModel rm_run;
  if (cfg.scorer == "rm") {
    rm_run = load_reward_model(cfg.reward_model, dev);
    RLFT_CHECK(rm_run.tokenizer.to_json() == tok.to_json(), cfg.reward_model,
               ": its tokenizer differs from the SFT run's");
  }
  const TaskConfig task_config = task_config_of(policy_run);
  // The evaluation (and --scorer ground_truth) is the reviews task's hidden ground truth.
  RLFT_CHECK(task_config.task == "reviews", cfg.init, ": a run of task '", task_config.task,
             "'; rlft lm rrhf needs a reviews SFT run (its ground truth scores the samples)");
  const std::unique_ptr<Task> task = make_task(task_config);
  std::vector<std::string> train_prompts = task->prompts(Split::train), eval_prompts;
  for (const std::string& p : task->prompts(Split::validation))
    for (int64_t j = 0; j < cfg.eval_samples; ++j) eval_prompts.push_back(p);
  Generator gen(cfg.seed), sample_gen(cfg.seed + 1);
  for (size_t i = train_prompts.size(); i > 1; --i)
    std::swap(train_prompts[i - 1], train_prompts[gen.below(i)]);

  // The context's room for the candidates, checked before the run's first write.
  models::SamplingConfig sc;
  sc.temperature = cfg.temperature;
  sc.max_new_tokens = policy.config().block_size;
  sc = clamp_to_context(sc, policy, tok, train_prompts);
  // The responses are scored and trained on as text, re-tokenized as BOS prompt response EOS
  // (make_sequence_batch): a response cut at the context gets its EOS then, so it may use one
  // token less than the room generation alone would have.
  RLFT_CHECK(sc.max_new_tokens >= 2,
             "rlft lm rrhf: the prompts leave no room for a response and its EOS in the "
             "model's context of ",
             policy.config().block_size);
  --sc.max_new_tokens;
  // The evaluations' validation prompts must leave room too.
  (void)clamp_to_context(models::SamplingConfig{}, policy, tok, eval_prompts);

  const rl::RunDir run(rl::run_path(cfg.out_dir, cfg.name), true);
  json::Value config_json = to_json(cfg);
  config_json.set("git_revision", rl::git_revision());
  run.write_config(config_json);
  rl::Stopwatch clock;
  RRHFResult res;
  res.run_dir = run.dir();
  auto evaluate = [&]() {
    Generator g(cfg.seed + 12345);
    return evaluate_policy(policy, *ref_run.model, tok, eval_prompts, 1.0, g);
  };
  res.before = evaluate();
  optim::Adam opt(policy.parameters(), cfg.lr);
  size_t next = 0;
  double w_loss = 0, w_rank = 0, w_ft = 0, w_score = 0, w_gt = 0;
  int64_t w_n = 0;
  std::vector<double> xs, gts;
  for (int64_t step = 1; step <= cfg.steps; ++step) {
    std::vector<std::string> prompts, responses;
    for (int64_t i = 0; i < cfg.prompts_per_step; ++i) {
      const std::string& p = train_prompts[next++ % train_prompts.size()];
      for (int64_t j = 0; j < cfg.k; ++j) prompts.push_back(p);
    }
    responses = sample_responses(policy, tok, prompts, sc, sample_gen);
    for (std::string& r : responses) r = clean_response(r);  // re-tokenizable text
    std::vector<double> scores;
    if (cfg.scorer == "rm") {
      scores = reward_scores(*rm_run.model, tok, prompts, responses);
    } else {
      for (size_t i = 0; i < prompts.size(); ++i)
        scores.push_back(ground_truth_reward(prompts[i], responses[i]));
    }
    policy.train();
    const SequenceBatch sb =
        make_sequence_batch(tok, prompts, responses, policy.config().block_size, dev);
    const Tensor lp = response_log_prob_sums(policy, sb);
    Tensor total;
    for (int64_t i = 0; i < cfg.prompts_per_step; ++i) {
      const size_t s = size_t(i * cfg.k), e = s + size_t(cfg.k);
      const RRHFLoss l =
          rrhf_loss(lp.narrow(0, int64_t(s), cfg.k),
                    {sb.response_lengths.begin() + long(s), sb.response_lengths.begin() + long(e)},
                    {scores.begin() + long(s), scores.begin() + long(e)});
      total = total.defined() ? add(total, l.loss) : l.loss;
      w_rank += l.rank_loss, w_ft += l.ft_loss;
    }
    total = mul(total, 1.0 / double(cfg.prompts_per_step));
    opt.zero_grad();
    total.backward();
    const bool do_eval = step == cfg.steps || (cfg.eval_every > 0 && step % cfg.eval_every == 0);
    const bool do_log = step % cfg.log_every == 0 || do_eval;
    // The global gradient norm before clipping, of the logged steps: clip_grad_norm returns it;
    // without clipping it is measured on those steps only (a host synchronisation on a GPU).
    double grad_norm = 0;
    if (cfg.grad_clip > 0)
      grad_norm = optim::clip_grad_norm(policy.parameters(), cfg.grad_clip);
    else if (do_log)
      grad_norm = optim::grad_norm(policy.parameters());
    opt.step();
    res.losses.push_back(total.item());
    w_loss += total.item();
    for (size_t i = 0; i < prompts.size(); ++i) {
      w_score += scores[i];
      w_gt += ground_truth_probability(prompts[i], responses[i]);
    }
    ++w_n;
    if (do_log) {
      const double nb = double(w_n), ns = double(w_n * cfg.prompts_per_step * cfg.k);
      json::Value m = json::Value::object();
      m.set("step", step);
      m.set("loss", w_loss / nb);
      m.set("rank_loss", w_rank / (nb * double(cfg.prompts_per_step)));
      m.set("ft_loss", w_ft / (nb * double(cfg.prompts_per_step)));
      m.set("score", w_score / ns);
      m.set("sample_ground_truth", w_gt / ns);
      m.set("grad_norm", grad_norm);
      if (do_eval) {
        const PolicyEval pe = evaluate();
        if (step == cfg.steps) res.after = pe;
        m.set("ground_truth", pe.ground_truth);
        m.set("kl", pe.kl);
        m.set("response_length", pe.response_length);
        xs.push_back(double(step)), gts.push_back(pe.ground_truth);
      }
      m.set("elapsed_seconds", clock.seconds());
      run.log(m);
      if (!cfg.quiet)
        std::printf("step %5lld  loss %.4f  score %+.3f  sample ground truth %.3f  %.0fs\n",
                    (long long)step, w_loss / nb, rl::printable(w_score / ns, 3), w_gt / ns,
                    clock.seconds());
      w_loss = w_rank = w_ft = w_score = w_gt = 0;
      w_n = 0;
    }
  }
  if (!xs.empty())
    plot::write_line_plot(run.path("ground_truth.svg"), "RRHF samples on validation prompts",
                          "step", "ground truth p(positive)", {{"ground truth", xs, gts}});
  save_checkpoint(run.path("checkpoint.safetensors"), policy, nullptr,
                  checkpoint_metadata(policy.config(), tok, policy_run.run_config, cfg.steps));
  return res;
}

}  // namespace rlft::llm
