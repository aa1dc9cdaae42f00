// RRHF (objective, sources and defaults in rrhf.h, ALGORITHMS.md §6): the ranking loss, then the
// loop: sample k responses per prompt → score them → rank + fine-tune loss → Adam step → log.
#include "rl/llm/rrhf.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <optional>

#include "engine/checkpoint.h"
#include "engine/error.h"
#include "engine/fs.h"
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

RRHFStepLoss rrhf_step_loss(models::GPT& policy, const models::Tokenizer& tok,
                            const std::vector<std::string>& prompts,
                            const std::vector<std::string>& responses,
                            const std::vector<double>& scores, int64_t k) {
  RLFT_CHECK(k >= 1 && !prompts.empty() && prompts.size() % size_t(k) == 0 &&
                 responses.size() == prompts.size() && scores.size() == prompts.size(),
             "rrhf_step_loss: ", prompts.size(), " prompts, ", responses.size(), " responses, ",
             scores.size(), " scores in groups of ", k);
  const SequenceBatch sb =
      make_sequence_batch(tok, prompts, responses, policy.config().block_size, policy.device());
  const Tensor lp = response_log_prob_sums(policy, sb);
  const int64_t groups = int64_t(prompts.size()) / k;
  RRHFStepLoss out;
  Tensor total;
  for (int64_t i = 0; i < groups; ++i) {
    const size_t s = size_t(i * k), e = s + size_t(k);
    const RRHFLoss l =
        rrhf_loss(lp.narrow(0, int64_t(s), k),
                  {sb.response_lengths.begin() + long(s), sb.response_lengths.begin() + long(e)},
                  {scores.begin() + long(s), scores.begin() + long(e)});
    total = total.defined() ? add(total, l.loss) : l.loss;
    out.rank_sum += l.rank_loss, out.ft_sum += l.ft_loss;
  }
  out.loss = mul(total, 1.0 / double(groups));
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
  v.set("checkpoint_every", c.checkpoint_every);
  v.set("resume", c.resume);
  v.set("stop_after", c.stop_after);
  v.set("out_dir", c.out_dir);
  v.set("name", c.name);
  v.set("seed", c.seed);
  v.set("device", c.device);
  return v;
}

static void check_config(const RRHFConfig& cfg) {
  RLFT_CHECK(!cfg.init.empty(), "rlft lm rrhf: --init (an SFT run) is required");
  RLFT_CHECK(cfg.scorer == "rm" || cfg.scorer == "ground_truth",
             "rlft lm rrhf: --scorer must be rm or ground_truth, got '", cfg.scorer, "'");
  RLFT_CHECK(cfg.scorer != "rm" || !cfg.reward_model.empty(),
             "rlft lm rrhf: --reward-model is required with --scorer rm");
  RLFT_CHECK(cfg.scorer == "rm" || cfg.reward_model.empty(), "rlft lm rrhf: --reward-model ",
             cfg.reward_model, " is not used with --scorer ", cfg.scorer,
             " (the task's ground truth ranks the candidates): drop one of the two");
  const char* cmd = "rlft lm rrhf: ";
  RLFT_CHECK(cfg.steps > 0, cmd, "--steps must be positive, got ", cfg.steps);
  rl::check_count(cmd, "--prompts-per-step", cfg.prompts_per_step);
  RLFT_CHECK(cfg.k >= 2, cmd, "--k must be at least 2 (candidates are ranked), got ", cfg.k);
  rl::check_count(cmd, "--k", cfg.k);
  RLFT_CHECK(cfg.prompts_per_step * cfg.k <= rl::kMaxSequencesPerStep, cmd,
             "--prompts-per-step x --k = ", cfg.prompts_per_step, " x ", cfg.k,
             " candidates per step is more than ", rl::kMaxSequencesPerStep);
  const double inf = HUGE_VAL;
  rl::check_number(cmd, "--temperature", cfg.temperature, 0, true, inf, "a finite number > 0");
  rl::check_number(cmd, "--lr", cfg.lr, 0, true, inf, "a finite number > 0");
  rl::check_number(cmd, "--grad-clip", cfg.grad_clip, 0, false, inf,
                   "a finite number >= 0 (0: off)");
  RLFT_CHECK(cfg.log_every > 0, cmd, "--log-every must be positive, got ", cfg.log_every);
  RLFT_CHECK(cfg.eval_every >= 0, cmd, "--eval-every must be >= 0 (0: only at the end), got ",
             cfg.eval_every);
  rl::check_count(cmd, "--eval-samples", cfg.eval_samples);
  rl::check_checkpoint_options(cmd, cfg.checkpoint_every, cfg.stop_after);
  // --out-dir and --name, checked before any loading; the run is not its own input.
  rl::check_not_the_run(rl::run_path(cfg.out_dir, cfg.name),
                        {{"--init", cfg.init}, {"--reward-model", cfg.reward_model}});
}

namespace {

// The loop's state between two steps, stored in a checkpoint's rrhf_state (JSON): with the
// weights, Adam's state and the step it is everything the next step depends on.
struct LoopState {
  uint64_t sample_offset = 0, dropout_offset = 0;  // the streams' Philox counters (block-aligned)
  int64_t prompt_pos = 0;  // prompts drawn so far from the shuffled training prompts (cyclic)
  // The metrics window: sums over the steps since the last metrics row.
  double w_loss = 0, w_rank = 0, w_ft = 0, w_score = 0, w_gt = 0;
  int64_t w_n = 0;
  PolicyEval before;  // the step-0 evaluation
};

json::Value to_json(const LoopState& s) {
  json::Value v = json::Value::object();
  v.set("sample_offset", int64_t(s.sample_offset));
  v.set("dropout_offset", int64_t(s.dropout_offset));
  v.set("prompt_pos", s.prompt_pos);
  v.set("window_loss", s.w_loss);
  v.set("window_rank_loss", s.w_rank);
  v.set("window_ft_loss", s.w_ft);
  v.set("window_score", s.w_score);
  v.set("window_sample_ground_truth", s.w_gt);
  v.set("window_steps", s.w_n);
  v.set("before_ground_truth", s.before.ground_truth);
  v.set("before_kl", s.before.kl);
  v.set("before_response_length", s.before.response_length);
  return v;
}

// rrhf_state read and checked whole before the run writes anything: a corrupted or foreign
// checkpoint is one error naming the file and the field.
LoopState parse_loop_state(const std::string& text, const std::string& ckpt) {
  const rl::StateReader st(text, ckpt, "rrhf_state");
  const auto integer = [&](const char* key) { return st.integer(key); };
  const auto number = [&](const char* key) { return st.number_or_nan(key); };
  LoopState s;
  s.sample_offset = uint64_t(integer("sample_offset"));
  s.dropout_offset = uint64_t(integer("dropout_offset"));
  s.prompt_pos = integer("prompt_pos");
  s.w_loss = number("window_loss");
  s.w_rank = number("window_rank_loss");
  s.w_ft = number("window_ft_loss");
  s.w_score = number("window_score");
  s.w_gt = number("window_sample_ground_truth");
  s.w_n = integer("window_steps");
  s.before.ground_truth = number("before_ground_truth");
  s.before.kl = number("before_kl");
  s.before.response_length = number("before_response_length");
  return s;
}

}  // namespace

RRHFResult train_rrhf(const RRHFConfig& given) {
  check_config(given);
  const std::string run_dir = rl::run_path(given.out_dir, given.name);
  // The inputs from the root: a resume from another directory reads the same runs.
  const json::Value recorded = recorded_config(given.resume ? run_dir : "");
  RRHFConfig cfg = given;
  cfg.init = recorded_input_path(cfg.init, "init", recorded);
  cfg.reward_model = recorded_input_path(cfg.reward_model, "reward_model", recorded);
  json::Value config_json = to_json(cfg);
  // --resume: the same settings as the run was started with (a longer --steps may continue
  // it), checked before anything is read or written; a fresh run's directory is created once
  // every input has been read (below).
  std::optional<rl::RunDir> resumed;
  if (cfg.resume) resumed = rl::open_run(run_dir, true, config_json, {"steps"});
  // A resume reads the SFT run and the reward model (when it scores) the run started with:
  // checked before they are read.
  std::vector<RunInput> inputs = {run_input("--init", cfg.init)};
  if (cfg.scorer == "rm") inputs.push_back(run_input("--reward-model", cfg.reward_model));
  const json::Value fingerprints = fingerprint_inputs(inputs, recorded);
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
  // The prompt order: one seeded shuffle, redrawn alike by a resumed run.
  Generator gen(cfg.seed);
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

  optim::Adam opt(policy.parameters(), cfg.lr);
  // The candidates' and the dropout masks' streams (the policy's dropout, when its SFT run has
  // any), both seeded from --seed. Both are realigned to a Philox block at the start of every
  // step (align_to_block), so their counters are their whole state between steps.
  Generator sample_gen(cfg.seed + 1);
  Generator& dropout_gen = policy.dropout_generator();
  dropout_gen.set_state(cfg.seed ^ 0xd70b0a11ull, 0);
  LoopState ls;
  int64_t start = 0;
  std::vector<double> xs, gts;
  RRHFResult res;
  const rl::RunDir run = resumed ? *resumed : rl::open_run(run_dir, false, config_json);
  record_fingerprints(config_json, fingerprints);
  const std::string ckpt = run.path("checkpoint.safetensors");
  if (cfg.resume) {
    // The weights, Adam's moments, the step and the loop's state, all checked before the
    // metrics after the checkpoint are dropped.
    const Metadata meta =
        load_training_checkpoint(ckpt, policy, opt, tok, "--init " + cfg.init, "rrhf_state",
                                 "not an RRHF training checkpoint (no rrhf_state in its metadata)");
    ls = parse_loop_state(meta.at("rrhf_state"), ckpt);
    start = metadata_int(meta, "step", ckpt);
    RLFT_CHECK(start <= cfg.steps, ckpt, ": the checkpoint is at step ", start, ", beyond --steps ",
               cfg.steps);
    sample_gen.set_state(sample_gen.seed(), ls.sample_offset);
    dropout_gen.set_state(dropout_gen.seed(), ls.dropout_offset);
    res.before = ls.before;
    // The curve so far and, for a run already at --steps, its final evaluation.
    run.keep_metrics_through(start, "step", [&](const json::Value& line) {
      if (!line.contains("ground_truth") || !line.contains("kl")) return;
      const int64_t s = line.at("step").as_int();
      xs.push_back(double(s)), gts.push_back(rl::metric_number(line, "ground_truth"));
      if (s == cfg.steps) {
        res.after = {
            rl::metric_number(line, "ground_truth"), rl::metric_number(line, "kl"),
            line.contains("response_length") ? rl::metric_number(line, "response_length") : 0.0};
        res.finished = true;
      }
    });
    if (!cfg.quiet) std::printf("resumed at step %lld from %s\n", (long long)start, ckpt.c_str());
  }
  run.write_config(config_json);
  rl::Stopwatch clock;
  res.run_dir = run.dir();
  res.start_step = res.steps = start;
  auto evaluate = [&]() {
    Generator g(cfg.seed + 12345);
    return evaluate_policy(policy, *ref_run.model, tok, eval_prompts, 1.0, g);
  };
  if (!cfg.resume) res.before = ls.before = evaluate();
  // A training checkpoint: weights, Adam's state, the step and the loop's state. Its run_config
  // is the SFT run's (the task `rlft lm eval|sample` read from it).
  auto save = [&](int64_t step) {
    sample_gen.align_to_block(), dropout_gen.align_to_block();
    ls.sample_offset = sample_gen.offset();
    ls.dropout_offset = dropout_gen.offset();
    Metadata meta = checkpoint_metadata(policy.config(), tok, policy_run.run_config, step);
    meta["rrhf_state"] = to_json(ls).dump();
    run.sync_log();
    save_checkpoint(ckpt, policy, &opt, meta);
  };
  const int64_t end = cfg.stop_after > 0 ? std::min(cfg.steps, start + cfg.stop_after) : cfg.steps;
  for (int64_t step = start + 1; step <= end; ++step) {
    sample_gen.align_to_block(), dropout_gen.align_to_block();
    std::vector<std::string> prompts, responses;
    for (int64_t i = 0; i < cfg.prompts_per_step; ++i) {
      const std::string& p = train_prompts[size_t(ls.prompt_pos++) % train_prompts.size()];
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
    const RRHFStepLoss sl = rrhf_step_loss(policy, tok, prompts, responses, scores, cfg.k);
    ls.w_rank += sl.rank_sum, ls.w_ft += sl.ft_sum;
    const Tensor& total = sl.loss;
    opt.zero_grad();
    total.backward();
    const bool last = step == cfg.steps;
    const bool stopping = step == end && !last;  // --stop-after, before the end
    const bool do_eval = last || (cfg.eval_every > 0 && step % cfg.eval_every == 0);
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
    ls.w_loss += total.item();
    for (size_t i = 0; i < prompts.size(); ++i) {
      ls.w_score += scores[i];
      ls.w_gt += ground_truth_probability(prompts[i], responses[i]);
    }
    ++ls.w_n;
    if (do_log) {
      const double nb = double(ls.w_n), ns = double(ls.w_n * cfg.prompts_per_step * cfg.k);
      json::Value m = json::Value::object();
      m.set("step", step);
      m.set("loss", ls.w_loss / nb);
      m.set("rank_loss", ls.w_rank / (nb * double(cfg.prompts_per_step)));
      m.set("ft_loss", ls.w_ft / (nb * double(cfg.prompts_per_step)));
      m.set("score", ls.w_score / ns);
      m.set("sample_ground_truth", ls.w_gt / ns);
      m.set("grad_norm", grad_norm);
      if (do_eval) {
        const PolicyEval pe = evaluate();
        if (last) res.after = pe, res.finished = true;
        m.set("ground_truth", pe.ground_truth);
        m.set("kl", pe.kl);
        m.set("response_length", pe.response_length);
        xs.push_back(double(step)), gts.push_back(pe.ground_truth);
      }
      m.set("elapsed_seconds", clock.seconds());
      run.log(m);
      if (!cfg.quiet)
        std::printf("step %5lld  loss %.4f  score %+.3f  sample ground truth %.3f  %.0fs\n",
                    (long long)step, ls.w_loss / nb, rl::printable(ls.w_score / ns, 3),
                    ls.w_gt / ns, clock.seconds());
      ls.w_loss = ls.w_rank = ls.w_ft = ls.w_score = ls.w_gt = 0;
      ls.w_n = 0;
    }
    res.steps = step;
    if (stopping) {
      save(step);  // --stop-after: checkpoint and leave, to be resumed
      if (!cfg.quiet) std::printf("stopped after step %lld (--stop-after)\n", (long long)step);
      return res;
    }
    if (!last && cfg.checkpoint_every > 0 && step % cfg.checkpoint_every == 0) save(step);
  }
  if (!xs.empty())
    plot::write_line_plot(run.path("ground_truth.svg"), "RRHF samples on validation prompts",
                          "step", "ground truth p(positive)", {{"ground truth", xs, gts}});
  if (end > start) save(end);  // the final checkpoint (a finished run resumed: left as it was)
  return res;
}

}  // namespace rlft::llm
