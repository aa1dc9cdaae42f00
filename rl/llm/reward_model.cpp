#include "rl/llm/reward_model.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "engine/checkpoint.h"
#include "engine/error.h"
#include "engine/ops.h"
#include "engine/optim.h"
#include "rl/llm/lm.h"
#include "rl/plot.h"
#include "rl/run.h"

namespace rlft::llm {

Tensor bradley_terry_loss(const Tensor& r_chosen, const Tensor& r_rejected, double margin,
                          double center_coef) {
  // −log σ(z) = softplus(−z), stable for large |z|.
  const Tensor z = add(sub(r_chosen, r_rejected), -margin);
  Tensor loss = mean(softplus(neg(z)));
  if (center_coef != 0)
    loss = add(loss, mul(mean(pow(add(r_chosen, r_rejected), 2.0)), center_coef));
  return loss;
}

json::Value to_json(const RewardModelConfig& c) {
  json::Value v = json::Value::object();
  v.set("prefs", c.prefs);
  v.set("init", c.init);
  v.set("epochs", c.epochs);
  v.set("batch", c.batch);
  v.set("grad_accum", c.grad_accum);
  v.set("lr", c.lr);
  v.set("lr_schedule", c.lr_schedule);
  v.set("min_lr_ratio", c.min_lr_ratio);
  v.set("weight_decay", c.weight_decay);
  v.set("grad_clip", c.grad_clip);
  v.set("margin", c.margin);
  v.set("center_coef", c.center_coef);
  v.set("eval_fraction", c.eval_fraction);
  v.set("out_dir", c.out_dir);
  v.set("name", c.name);
  v.set("seed", c.seed);
  v.set("device", c.device);
  return v;
}

std::vector<double> reward_scores(models::GPT& rm, const models::Tokenizer& tok,
                                  const std::vector<std::string>& prompts,
                                  const std::vector<std::string>& responses, int64_t batch) {
  NoGradGuard ng;
  const bool was = rm.is_training();
  rm.eval();
  std::vector<double> out;
  for (size_t s = 0; s < prompts.size(); s += size_t(batch)) {
    const size_t e = std::min(prompts.size(), s + size_t(batch));
    const SequenceBatch sb =
        make_sequence_batch(tok, {prompts.begin() + long(s), prompts.begin() + long(e)},
                            {responses.begin() + long(s), responses.begin() + long(e)},
                            rm.config().block_size, rm.device());
    const Tensor h = rm.forward(sb.tokens, sb.attention_mask);
    for (double r : rm.rewards(h, sb.attention_mask).to_vector()) out.push_back(r);
  }
  rm.train(was);
  return out;
}

RewardModelEval evaluate_reward_model(models::GPT& rm, const models::Tokenizer& tok,
                                      const std::vector<PreferencePair>& pairs, int64_t batch) {
  RewardModelEval ev;
  ev.pairs = int64_t(pairs.size());
  if (pairs.empty()) return ev;
  std::vector<std::string> prompts, responses;
  for (const auto& p : pairs) prompts.push_back(p.prompt), responses.push_back(p.chosen);
  for (const auto& p : pairs) prompts.push_back(p.prompt), responses.push_back(p.rejected);
  const std::vector<double> r = reward_scores(rm, tok, prompts, responses, batch);
  const size_t n = pairs.size();
  std::vector<double> model, truth;
  bool scores = true;
  for (size_t i = 0; i < n; ++i) {
    const double d = r[i] - r[n + i];
    ev.accuracy += d > 0;
    ev.loss += d > 0 ? std::log1p(std::exp(-d)) : -d + std::log1p(std::exp(d));
    scores = scores && !std::isnan(pairs[i].chosen_score) && !std::isnan(pairs[i].rejected_score);
  }
  ev.accuracy /= double(n);
  ev.loss /= double(n);
  if (scores) {
    auto logit = [](double p) {
      p = std::clamp(p, 1e-12, 1 - 1e-12);
      return std::log(p / (1 - p));
    };
    for (size_t i = 0; i < n; ++i) {
      model.push_back(r[i]), truth.push_back(logit(pairs[i].chosen_score));
      model.push_back(r[n + i]), truth.push_back(logit(pairs[i].rejected_score));
    }
    ev.correlation = pearson(model, truth);
    double n_gap = 0;
    for (size_t i = 0; i < n; ++i) {
      if (pairs[i].chosen_score == pairs[i].rejected_score) continue;
      n_gap += 1;
      ev.truth_accuracy += (r[i] > r[n + i]) == (pairs[i].chosen_score > pairs[i].rejected_score);
    }
    ev.truth_accuracy /= std::max(n_gap, 1.0);
    ev.has_correlation = true;
  }
  return ev;
}

static void check_config(const RewardModelConfig& cfg) {
  const char* cmd = "rlft lm rm: ";
  RLFT_CHECK(!cfg.prefs.empty(), cmd, "--prefs is required");
  RLFT_CHECK(!cfg.init.empty(), cmd, "--init (an SFT run) is required");
  RLFT_CHECK(cfg.epochs > 0, cmd, "--epochs must be > 0, got ", cfg.epochs);
  RLFT_CHECK(cfg.batch > 0, cmd, "--batch must be > 0, got ", cfg.batch);
  RLFT_CHECK(cfg.grad_accum > 0, cmd, "--grad-accum must be > 0, got ", cfg.grad_accum);
  RLFT_CHECK(cfg.batch % cfg.grad_accum == 0, cmd, "--batch ", cfg.batch,
             " is not divisible by --grad-accum ", cfg.grad_accum,
             " (each step's pairs are cut into micro-batches of --batch / --grad-accum pairs)");
  const double inf = HUGE_VAL;
  rl::check_number(cmd, "--lr", cfg.lr, 0, true, inf, "a positive number");
  optim::LRSchedule::parse(cfg.lr_schedule);
  rl::check_number(cmd, "--min-lr-ratio", cfg.min_lr_ratio, 0, false, 1, "in [0, 1]");
  rl::check_number(cmd, "--weight-decay", cfg.weight_decay, 0, false, inf, "a number >= 0");
  rl::check_number(cmd, "--grad-clip", cfg.grad_clip, 0, false, inf, "a number >= 0 (0: off)");
  rl::check_number(cmd, "--margin", cfg.margin, -inf, false, inf, "a finite number");
  rl::check_number(cmd, "--center-coef", cfg.center_coef, 0, false, inf, "a number >= 0 (0: off)");
  // [0, 1): the largest double below 1 is the closed upper end.
  rl::check_number(cmd, "--eval-fraction", cfg.eval_fraction, 0, false, std::nextafter(1.0, 0.0),
                   "in [0, 1)");
  // --out-dir and --name, checked before any loading; the run is not its own input.
  rl::check_not_the_run(rl::run_path(cfg.out_dir, cfg.name), {{"--init", cfg.init}});
  rl::resolve_device(cfg.device);
}

RewardModelResult train_reward_model(const RewardModelConfig& cfg) {
  check_config(cfg);
  const Device dev = rl::resolve_device(cfg.device);
  std::vector<PreferencePair> pairs = read_preferences(cfg.prefs);
  const LoadedModel init = load_policy(cfg.init, dev);
  // Every pair tokenized and fitted to the context before the run's first write.
  check_preferences(pairs, init.tokenizer, init.model->config().block_size, cfg.prefs);
  Generator gen(cfg.seed);
  const models::GPTConfig mc = with_heads(init.model->config(), false, true);
  models::GPT rm(mc, gen);  // the reward head drawn on the host, then moved: device-independent
  rm.to(dev);
  copy_matching_parameters(rm, *init.model);
  const models::Tokenizer& tok = init.tokenizer;

  // Seeded shuffle (Fisher–Yates), then the last eval_fraction are held out.
  for (size_t i = pairs.size(); i > 1; --i) std::swap(pairs[i - 1], pairs[gen.below(i)]);
  // ⌊n·f⌋ pairs held out: none for a small file (or --eval-fraction 0), and then no held-out
  // numbers are logged or printed.
  const size_t n_eval = size_t(double(pairs.size()) * cfg.eval_fraction);
  const std::vector<PreferencePair> heldout(pairs.end() - long(n_eval), pairs.end());
  std::vector<PreferencePair> train(pairs.begin(), pairs.end() - long(n_eval));
  RLFT_CHECK(!train.empty(), cfg.prefs, ": no training pairs left after holding out ", n_eval);

  const rl::RunDir run(rl::run_path(cfg.out_dir, cfg.name), true);
  json::Value config_json = to_json(cfg);
  config_json.set("git_revision", rl::git_revision());
  run.write_config(config_json);
  optim::AdamW opt(rm.parameters(), cfg.lr, 0.9, 0.95, 1e-8, cfg.weight_decay);
  optim::LRSchedule schedule;
  schedule.kind = optim::LRSchedule::parse(cfg.lr_schedule);
  schedule.base_lr = cfg.lr;
  schedule.end_lr = cfg.lr * cfg.min_lr_ratio;
  schedule.total = cfg.epochs * int64_t((train.size() + size_t(cfg.batch) - 1) / size_t(cfg.batch));
  RewardModelResult res;
  res.run_dir = run.dir();
  res.evals.push_back(evaluate_reward_model(rm, tok, heldout));
  if (!cfg.quiet)
    std::printf(
        heldout.empty()
            ? "rm: %zu train / %zu held-out pairs\n"
            : "rm: %zu train / %zu held-out pairs; before training held-out accuracy %.3f\n",
        train.size(), heldout.size(), res.evals.back().accuracy);
  rl::Stopwatch clock;
  int64_t step = 0;
  std::vector<double> ep_x, ep_acc, ep_corr;
  rm.train();
  const size_t micro = size_t(cfg.batch / cfg.grad_accum);  // pairs per micro-batch
  for (int64_t epoch = 1; epoch <= cfg.epochs; ++epoch) {
    for (size_t i = train.size(); i > 1; --i) std::swap(train[i - 1], train[gen.below(i)]);
    double ep_loss = 0, ep_train_acc = 0, grad_norm = 0;
    int64_t ep_steps = 0;
    for (size_t s = 0; s < train.size(); s += size_t(cfg.batch)) {
      const size_t e = std::min(train.size(), s + size_t(cfg.batch));
      // --grad-accum K: micro-batches of batch/K pairs, each mean loss weighted by its share of
      // the step's pairs, so the summed gradients are the step's; K = 1 is one plain pass.
      opt.set_lr(schedule.at(step));
      opt.zero_grad();
      double step_loss = 0;
      for (size_t ms = s; ms < e; ms += micro) {
        const size_t me = std::min(e, ms + micro);
        const int64_t B = int64_t(me - ms);
        const SequenceBatch sb = make_pair_batch(tok, train, ms, me, mc.block_size, dev);
        const Tensor r = rm.rewards(rm.forward(sb.tokens, sb.attention_mask), sb.attention_mask);
        const Tensor rw = r.narrow(0, 0, B), rl_ = r.narrow(0, B, B);
        const Tensor loss = bradley_terry_loss(rw, rl_, cfg.margin, cfg.center_coef);
        if (me - ms == e - s) {
          loss.backward();
          step_loss = loss.item();
        } else {
          const double w = double(me - ms) / double(e - s);
          mul(loss, w).backward();
          step_loss += loss.item() * w;
        }
        const std::vector<double> a = rw.to_vector(), b = rl_.to_vector();
        for (int64_t i = 0; i < B; ++i) ep_train_acc += a[size_t(i)] > b[size_t(i)];
      }
      // The epoch's last step is the one logged: its global gradient norm before clipping
      // (clip_grad_norm returns it; without clipping it is measured there only, as it is a
      // host synchronisation on a GPU).
      if (cfg.grad_clip > 0)
        grad_norm = optim::clip_grad_norm(rm.parameters(), cfg.grad_clip);
      else if (e == train.size())
        grad_norm = optim::grad_norm(rm.parameters());
      opt.step();
      ++step;
      res.losses.push_back(step_loss);
      ep_loss += step_loss;
      ++ep_steps;
    }
    const RewardModelEval ev = evaluate_reward_model(rm, tok, heldout);
    res.evals.push_back(ev);
    json::Value m = json::Value::object();
    m.set("epoch", epoch);
    m.set("step", step);
    m.set("loss", ep_loss / double(ep_steps));
    m.set("train_accuracy", ep_train_acc / double(train.size()));
    m.set("grad_norm", grad_norm);
    if (ev.pairs > 0) {
      m.set("heldout_accuracy", ev.accuracy);
      m.set("heldout_loss", ev.loss);
    }
    if (ev.pairs > 0 && ev.has_correlation) {
      m.set("heldout_correlation", ev.correlation);
      m.set("heldout_truth_accuracy", ev.truth_accuracy);
    }
    m.set("elapsed_seconds", clock.seconds());
    run.log(m);
    ep_x.push_back(double(epoch)), ep_acc.push_back(ev.accuracy), ep_corr.push_back(ev.correlation);
    if (!cfg.quiet && ev.pairs > 0)
      std::printf(
          "epoch %lld  step %6lld  loss %.4f  train acc %.3f  held-out acc %.3f (vs ground truth "
          "%.3f)  corr %.3f  "
          "%.0fs\n",
          (long long)epoch, (long long)step, ep_loss / double(ep_steps),
          ep_train_acc / double(train.size()), ev.accuracy, ev.truth_accuracy,
          rl::printable(ev.correlation, 3), clock.seconds());
    else if (!cfg.quiet)
      std::printf("epoch %lld  step %6lld  loss %.4f  train acc %.3f  (no held-out pairs)  %.0fs\n",
                  (long long)epoch, (long long)step, ep_loss / double(ep_steps),
                  ep_train_acc / double(train.size()), clock.seconds());
  }
  plot::write_line_plot(
      run.path("accuracy.svg"), "reward model", "epoch", "held-out",
      {{"pair accuracy", ep_x, ep_acc}, {"correlation with ground truth", ep_x, ep_corr}});
  save_checkpoint(run.path("checkpoint.safetensors"), rm, nullptr,
                  checkpoint_metadata(mc, tok, init.run_config, step));
  return res;
}

}  // namespace rlft::llm
