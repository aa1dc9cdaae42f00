// Reward model (Bradley–Terry objective, sources and defaults in reward_model.h, ALGORITHMS.md
// §3): the loss, then the loop: minibatches of pairs → AdamW step → held-out pair accuracy → log.
#include "rl/llm/reward_model.h"

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
  v.set("checkpoint_every", c.checkpoint_every);
  v.set("resume", c.resume);
  v.set("stop_after", c.stop_after);
  v.set("out_dir", c.out_dir);
  v.set("name", c.name);
  v.set("seed", c.seed);
  v.set("device", c.device);
  return v;
}

PairLoss pair_loss(models::GPT& rm, const models::Tokenizer& tok,
                   const std::vector<PreferencePair>& pairs, size_t s, size_t e, double margin,
                   double center_coef) {
  RLFT_CHECK(s < e && e <= pairs.size(), "pair_loss: pairs [", s, ", ", e, ") of ", pairs.size());
  const int64_t B = int64_t(e - s);
  const SequenceBatch sb = make_pair_batch(tok, pairs, s, e, rm.config().block_size, rm.device());
  const Tensor r = rm.rewards(rm.forward(sb.tokens, sb.attention_mask), sb.attention_mask);
  const Tensor chosen = r.narrow(0, 0, B), rejected = r.narrow(0, B, B);
  PairLoss out;
  out.loss = bradley_terry_loss(chosen, rejected, margin, center_coef);
  out.chosen = chosen.to_vector();
  out.rejected = rejected.to_vector();
  return out;
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
  rl::check_checkpoint_options(cmd, cfg.checkpoint_every, cfg.stop_after);
  // --out-dir and --name, checked before any loading; the run is not its own input.
  rl::check_not_the_run(rl::run_path(cfg.out_dir, cfg.name), {{"--init", cfg.init}});
  rl::resolve_device(cfg.device);
}

namespace {

// The loop's state between two steps, kept as rm_state (JSON) in a training checkpoint: the
// sums of the epoch under way (a resumed run's epoch row averages the same steps a straight
// run's does) and the evaluation before training (the first of the run's evals).
struct LoopState {
  double epoch_loss = 0, epoch_correct = 0, grad_norm = 0;
  int64_t epoch_steps = 0;
  RewardModelEval before;
};

json::Value to_json(const LoopState& s) {
  json::Value v = json::Value::object();
  v.set("epoch_loss", s.epoch_loss);
  v.set("epoch_correct", s.epoch_correct);
  v.set("epoch_steps", s.epoch_steps);
  v.set("grad_norm", s.grad_norm);
  v.set("before_accuracy", s.before.accuracy);
  v.set("before_loss", s.before.loss);
  v.set("before_correlation", s.before.correlation);
  v.set("before_truth_accuracy", s.before.truth_accuracy);
  v.set("before_has_correlation", s.before.has_correlation);
  return v;
}

// rm_state read and checked whole before the run changes anything: a corrupt state (or one
// whose epoch position disagrees with the checkpoint's step) is an error naming the field.
LoopState parse_loop_state(const std::string& text, const std::string& ckpt, int64_t step,
                           int64_t steps_per_epoch, int64_t heldout_pairs) {
  const rl::StateReader st(text, ckpt, "rm_state");
  LoopState s;
  // Sums that overflowed or went NaN were written as null (JSON has no NaN): read back as NaN.
  s.epoch_loss = st.number_or_nan("epoch_loss");
  s.epoch_correct = st.finite("epoch_correct", 0);
  s.grad_norm = st.number_or_nan("grad_norm");
  s.epoch_steps = st.integer("epoch_steps", 0, steps_per_epoch - 1);
  RLFT_CHECK(s.epoch_steps == step % steps_per_epoch, st.where(),
             ": field 'epoch_steps' = ", s.epoch_steps, " but the checkpoint's step ", step, " is ",
             step % steps_per_epoch, " steps into an epoch of ", steps_per_epoch,
             " (the state is not this run's, or the preference file changed)");
  s.before.accuracy = st.number_or_nan("before_accuracy");
  s.before.loss = st.number_or_nan("before_loss");
  s.before.correlation = st.number_or_nan("before_correlation");
  s.before.truth_accuracy = st.number_or_nan("before_truth_accuracy");
  const json::Value& has = st.field("before_has_correlation");
  RLFT_CHECK(has.is_bool(), st.where(),
             ": field 'before_has_correlation' must be true or false, got ", has.dump());
  s.before.has_correlation = has.as_bool();
  s.before.pairs = heldout_pairs;
  return s;
}

// An epoch's held-out evaluation as its metrics row logged it (absent: no held-out pairs, or no
// ground-truth scores, and then 0 as evaluate_reward_model leaves it; null: NaN).
RewardModelEval eval_of_row(const json::Value& row, int64_t heldout_pairs) {
  const auto number = [&](const char* key) {
    const json::Value* v = row.find(key);
    return v == nullptr ? 0.0 : rl::metric_number(row, key);
  };
  RewardModelEval ev;
  ev.pairs = heldout_pairs;
  ev.accuracy = number("heldout_accuracy");
  ev.loss = number("heldout_loss");
  ev.correlation = number("heldout_correlation");
  ev.truth_accuracy = number("heldout_truth_accuracy");
  ev.has_correlation = row.contains("heldout_correlation");
  return ev;
}

// The stream of the reward model's dropout masks (drawn only when its SFT run has dropout).
constexpr uint64_t kDropoutStream = 0x7e3a2d0bull;

}  // namespace

RewardModelResult train_reward_model(const RewardModelConfig& given) {
  check_config(given);
  const std::string run_dir = rl::run_path(given.out_dir, given.name);
  // The inputs from the root: a resume from another directory reads the same files.
  const json::Value recorded = recorded_config(given.resume ? run_dir : "");
  RewardModelConfig cfg = given;
  cfg.prefs = recorded_input_path(cfg.prefs, "prefs", recorded);
  cfg.init = recorded_input_path(cfg.init, "init", recorded);
  json::Value config_json = to_json(cfg);
  // --resume: the same pairs, backbone and optimisation as the run was started with (--epochs
  // may change, checked against the checkpoint's step below; --grad-accum too: the same steps
  // up to float rounding), checked before anything is read or written; a fresh run's directory
  // is created once every input has been read (below).
  std::optional<rl::RunDir> resumed;
  if (cfg.resume) resumed = rl::open_run(run_dir, true, config_json, {"epochs", "grad_accum"});
  // A resume reads the pairs and the SFT run the run started with: checked before they are read.
  const json::Value fingerprints = fingerprint_inputs(
      {file_input("--prefs", cfg.prefs), run_input("--init", cfg.init)}, recorded);
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

  optim::AdamW opt(rm.parameters(), cfg.lr, 0.9, 0.95, 1e-8, cfg.weight_decay);
  opt.set_weight_decay_mask(optim::matrices_decay(rm.parameters()));  // as lm sft's groups
  const int64_t steps_per_epoch =
      int64_t((train.size() + size_t(cfg.batch) - 1) / size_t(cfg.batch));
  const int64_t total = cfg.epochs * steps_per_epoch;
  optim::LRSchedule schedule;
  schedule.kind = optim::LRSchedule::parse(cfg.lr_schedule);
  schedule.base_lr = cfg.lr;
  schedule.end_lr = cfg.lr * cfg.min_lr_ratio;
  schedule.total = total;
  RewardModelResult res;
  LoopState ls;
  int64_t start = 0;
  std::vector<double> ep_x, ep_acc, ep_corr;  // accuracy.svg's curves
  const rl::RunDir run = resumed ? *resumed : rl::open_run(run_dir, false, config_json);
  record_fingerprints(config_json, fingerprints);
  const std::string ckpt = run.path("checkpoint.safetensors");
  if (cfg.resume) {
    // The trainer's state, then the weights and AdamW's moments, all checked before the
    // metrics after the checkpoint are dropped (a refused resume leaves the run as it was).
    const Metadata meta = load_training_checkpoint(
        ckpt, rm, opt, tok, "--init " + cfg.init + " (with a reward head)", "rm_state",
        "not a reward-model training checkpoint (no rm_state in its metadata: another trainer's, "
        "or a final reward model written before `rlft lm rm` could resume)");
    start = metadata_int(meta, "step", ckpt);
    RLFT_CHECK(start <= total, ckpt, ": the checkpoint is at step ", start, ", beyond the ", total,
               " steps of --epochs ", cfg.epochs, " (", steps_per_epoch, " per epoch)");
    ls = parse_loop_state(meta.at("rm_state"), ckpt, start, steps_per_epoch,
                          int64_t(heldout.size()));
    res.evals.push_back(ls.before);
    run.keep_metrics_through(start, "step", [&](const json::Value& row) {
      const RewardModelEval ev = eval_of_row(row, int64_t(heldout.size()));
      res.evals.push_back(ev);
      ep_x.push_back(rl::metric_number(row, "epoch")), ep_acc.push_back(ev.accuracy);
      ep_corr.push_back(ev.correlation);
    });
    if (!cfg.quiet) std::printf("resumed at step %lld from %s\n", (long long)start, ckpt.c_str());
  }
  run.write_config(config_json);
  res.run_dir = run.dir();
  res.start_step = res.step = start;
  if (!cfg.resume) {
    res.evals.push_back(ls.before = evaluate_reward_model(rm, tok, heldout));
    if (!cfg.quiet)
      std::printf(
          heldout.empty()
              ? "rm: %zu train / %zu held-out pairs\n"
              : "rm: %zu train / %zu held-out pairs; before training held-out accuracy %.3f\n",
          train.size(), heldout.size(), ls.before.accuracy);
  }
  // A training checkpoint: weights, AdamW's state, the step and the loop's state. Its
  // model_config and tokenizer make it a reward model for lm ppo, rrhf and rm --evaluate.
  auto save = [&](int64_t at) {
    Metadata meta = checkpoint_metadata(mc, tok, init.run_config, at);
    meta["rm_state"] = to_json(ls).dump();
    run.sync_log();
    save_checkpoint(ckpt, rm, &opt, meta);
  };
  rl::Stopwatch clock;
  int64_t step = start;
  const int64_t stop_at = cfg.stop_after > 0 ? start + cfg.stop_after : -1;
  rm.train();
  const size_t micro = size_t(cfg.batch / cfg.grad_accum);  // pairs per micro-batch
  for (int64_t epoch = 1; epoch <= cfg.epochs; ++epoch) {
    // Every epoch's shuffle is drawn, also the ones a resumed run has done: the generator then
    // reaches the resumed epoch in the state a straight run has there.
    for (size_t i = train.size(); i > 1; --i) std::swap(train[i - 1], train[gen.below(i)]);
    const int64_t first_step = (epoch - 1) * steps_per_epoch;
    if (first_step + steps_per_epoch <= start) continue;
    const size_t skip = size_t(std::max<int64_t>(start - first_step, 0)) * size_t(cfg.batch);
    for (size_t s = skip; s < train.size(); s += size_t(cfg.batch)) {
      const size_t e = std::min(train.size(), s + size_t(cfg.batch));
      // --grad-accum K: micro-batches of batch/K pairs, each mean loss weighted by its share of
      // the step's pairs, so the summed gradients are the step's; K = 1 is one plain pass.
      // The dropout masks of step s depend on (seed, s) only: a resumed run draws the straight
      // run's.
      rm.dropout_generator().set_state(cfg.seed ^ kDropoutStream, uint64_t(step) << 32);
      opt.set_lr(schedule.at(step));
      opt.zero_grad();
      double step_loss = 0;
      for (size_t ms = s; ms < e; ms += micro) {
        const size_t me = std::min(e, ms + micro);
        const int64_t B = int64_t(me - ms);
        const PairLoss pl = pair_loss(rm, tok, train, ms, me, cfg.margin, cfg.center_coef);
        const Tensor& loss = pl.loss;
        if (me - ms == e - s) {
          loss.backward();
          step_loss = loss.item();
        } else {
          const double w = double(me - ms) / double(e - s);
          mul(loss, w).backward();
          step_loss += loss.item() * w;
        }
        for (int64_t i = 0; i < B; ++i)
          ls.epoch_correct += pl.chosen[size_t(i)] > pl.rejected[size_t(i)];
      }
      // The epoch's last step is the one logged: its global gradient norm before clipping
      // (clip_grad_norm returns it; without clipping it is measured there only, as it is a
      // host synchronisation on a GPU).
      if (cfg.grad_clip > 0)
        ls.grad_norm = optim::clip_grad_norm(rm.parameters(), cfg.grad_clip);
      else if (e == train.size())
        ls.grad_norm = optim::grad_norm(rm.parameters());
      opt.step();
      ++step;
      res.losses.push_back(step_loss);
      ls.epoch_loss += step_loss;
      ++ls.epoch_steps;
      if (e == train.size()) {  // the epoch's row
        const RewardModelEval ev = evaluate_reward_model(rm, tok, heldout);
        res.evals.push_back(ev);
        const double loss = ls.epoch_loss / double(ls.epoch_steps),
                     train_acc = ls.epoch_correct / double(train.size());
        json::Value m = json::Value::object();
        m.set("epoch", epoch);
        m.set("step", step);
        m.set("loss", loss);
        m.set("train_accuracy", train_acc);
        m.set("grad_norm", ls.grad_norm);
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
        ep_x.push_back(double(epoch)), ep_acc.push_back(ev.accuracy);
        ep_corr.push_back(ev.correlation);
        if (!cfg.quiet && ev.pairs > 0)
          std::printf(
              "epoch %lld  step %6lld  loss %.4f  train acc %.3f  held-out acc %.3f (vs ground "
              "truth %.3f)  corr %.3f  %.0fs\n",
              (long long)epoch, (long long)step, loss, train_acc, ev.accuracy, ev.truth_accuracy,
              rl::printable(ev.correlation, 3), clock.seconds());
        else if (!cfg.quiet)
          std::printf(
              "epoch %lld  step %6lld  loss %.4f  train acc %.3f  (no held-out pairs)  %.0fs\n",
              (long long)epoch, (long long)step, loss, train_acc, clock.seconds());
        ls.epoch_loss = ls.epoch_correct = ls.grad_norm = 0;
        ls.epoch_steps = 0;
      }
      const bool last = step == total;
      if (step == stop_at && !last) {
        save(step);  // --stop-after: checkpoint and leave, to be resumed
        if (!cfg.quiet) std::printf("stopped after step %lld (--stop-after)\n", (long long)step);
        res.step = step;
        return res;
      }
      if (cfg.checkpoint_every > 0 && step % cfg.checkpoint_every == 0 && !last) save(step);
    }
  }
  res.step = step;
  res.finished = true;
  // A finished run resumed ran nothing: its curves and checkpoint are left as they were.
  if (step > start) {
    plot::write_line_plot(
        run.path("accuracy.svg"), "reward model", "epoch", "held-out",
        {{"pair accuracy", ep_x, ep_acc}, {"correlation with ground truth", ep_x, ep_corr}});
    save(step);
  }
  return res;
}

}  // namespace rlft::llm
