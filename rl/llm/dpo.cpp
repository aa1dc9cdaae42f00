// DPO, cDPO and IPO (objective, sources and defaults in dpo.h, ALGORITHMS.md §5): the losses,
// then the loop: cached reference log-probs → minibatch updates → held-out reward accuracy → log.
#include "rl/llm/dpo.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>

#include "engine/checkpoint.h"
#include "engine/error.h"
#include "engine/fs.h"
#include "engine/ops.h"
#include "engine/optim.h"
#include "rl/llm/lm.h"
#include "rl/plot.h"
#include "rl/run.h"

namespace rlft::llm {

DPOLossType parse_dpo_loss(const std::string& name) {
  if (name == "sigmoid") return DPOLossType::sigmoid;
  if (name == "cdpo") return DPOLossType::cdpo;
  if (name == "ipo") return DPOLossType::ipo;
  throw Error(str("dpo: --loss must be sigmoid, cdpo or ipo, got '", name, "'"));
}

const char* dpo_loss_name(DPOLossType t) {
  return t == DPOLossType::sigmoid ? "sigmoid" : t == DPOLossType::cdpo ? "cdpo" : "ipo";
}

DPOLoss dpo_loss(const Tensor& policy_chosen, const Tensor& policy_rejected,
                 const Tensor& ref_chosen, const Tensor& ref_rejected, double beta,
                 DPOLossType type, double label_smoothing) {
  RLFT_CHECK(beta > 0, "dpo_loss: beta must be > 0, got ", beta);
  RLFT_CHECK(label_smoothing >= 0 && label_smoothing < 0.5,
             "dpo_loss: label_smoothing must be in [0, 0.5), got ", label_smoothing);
  const Tensor chosen_logratios = sub(policy_chosen, ref_chosen);
  const Tensor rejected_logratios = sub(policy_rejected, ref_rejected);
  const Tensor h = sub(chosen_logratios, rejected_logratios);  // Rafailov et al. eq. 7
  Tensor losses;
  switch (type) {
    case DPOLossType::sigmoid:  // −log σ(βh) = softplus(−βh)
      losses = softplus(mul(h, -beta));
      break;
    case DPOLossType::cdpo:  // −(1−ε) log σ(βh) − ε log σ(−βh)
      losses = add(mul(softplus(mul(h, -beta)), 1 - label_smoothing),
                   mul(softplus(mul(h, beta)), label_smoothing));
      break;
    case DPOLossType::ipo:  // (h − 1/(2τ))², τ = beta
      losses = pow(add(h, -1.0 / (2 * beta)), 2.0);
      break;
  }
  DPOLoss out;
  out.loss = mean(losses);
  out.chosen_rewards = mul(chosen_logratios, beta).detach();
  out.rejected_rewards = mul(rejected_logratios, beta).detach();
  return out;
}

json::Value to_json(const DPOConfig& c) {
  json::Value v = json::Value::object();
  v.set("prefs", c.prefs);
  v.set("init", c.init);
  v.set("beta", c.beta);
  v.set("loss", c.loss);
  v.set("label_smoothing", c.label_smoothing);
  v.set("epochs", c.epochs);
  v.set("batch", c.batch);
  v.set("grad_accum", c.grad_accum);
  v.set("lr", c.lr);
  v.set("grad_clip", c.grad_clip);
  v.set("eval_fraction", c.eval_fraction);
  v.set("log_every", c.log_every);
  v.set("eval_every", c.eval_every);
  v.set("eval_samples", c.eval_samples);
  v.set("max_steps", c.max_steps);
  v.set("checkpoint_every", c.checkpoint_every);
  v.set("resume", c.resume);
  v.set("stop_after", c.stop_after);
  v.set("out_dir", c.out_dir);
  v.set("name", c.name);
  v.set("seed", c.seed);
  v.set("device", c.device);
  return v;
}

namespace {

// Summed response log-probs of chosen and rejected for pairs [s, e): ([B], [B]).
std::pair<Tensor, Tensor> pair_log_probs(models::GPT& model, const models::Tokenizer& tok,
                                         const std::vector<PreferencePair>& pairs, size_t s,
                                         size_t e) {
  const int64_t B = int64_t(e - s);
  const Tensor lp = response_log_prob_sums(
      model, make_pair_batch(tok, pairs, s, e, model.config().block_size, model.device()));
  return {lp.narrow(0, 0, B), lp.narrow(0, B, B)};
}

// Reference log-probs of every pair, computed once (no gradient).
std::pair<std::vector<double>, std::vector<double>> cache_ref(
    models::GPT& ref, const models::Tokenizer& tok, const std::vector<PreferencePair>& pairs) {
  NoGradGuard ng;
  std::vector<double> c, r;
  for (size_t s = 0; s < pairs.size(); s += 64) {
    const auto [a, b] = pair_log_probs(ref, tok, pairs, s, std::min(pairs.size(), s + 64));
    for (double x : a.to_vector()) c.push_back(x);
    for (double x : b.to_vector()) r.push_back(x);
  }
  return {c, r};
}

Tensor slice(const std::vector<double>& v, size_t s, size_t e, DType dt, Device device) {
  return Tensor::from_vector(std::vector<double>(v.begin() + long(s), v.begin() + long(e)),
                             {int64_t(e - s)})
      .to(dt)
      .to(device);
}

struct PairStats {
  double loss = 0, chosen_reward = 0, rejected_reward = 0, accuracy = 0, chosen_logp = 0,
         rejected_logp = 0;
  int64_t n = 0;
  void add(const DPOLoss& l, const Tensor& pc, const Tensor& pr) {
    const std::vector<double> c = l.chosen_rewards.to_vector(), r = l.rejected_rewards.to_vector();
    const std::vector<double> a = pc.to_vector(), b = pr.to_vector();
    loss += l.loss.item() * double(c.size());
    for (size_t i = 0; i < c.size(); ++i) {
      chosen_reward += c[i], rejected_reward += r[i], accuracy += c[i] > r[i];
      chosen_logp += a[i], rejected_logp += b[i];
    }
    n += int64_t(c.size());
  }
  // The sums as they stand (a checkpoint between two logged steps keeps them, so the resumed
  // run's next row averages the same steps a straight run's does), and back.
  json::Value to_json() const {
    json::Value v = json::Value::object();
    v.set("loss", loss), v.set("chosen_reward", chosen_reward);
    v.set("rejected_reward", rejected_reward), v.set("accuracy", accuracy);
    v.set("chosen_logp", chosen_logp), v.set("rejected_logp", rejected_logp), v.set("n", n);
    return v;
  }
  static PairStats from_state(const std::string& text, const std::string& ckpt) {
    const rl::StateReader st(text, ckpt, "dpo_window");
    PairStats p;
    const auto sum = [&](const char* key) { return st.number_or_nan(key); };
    p.loss = sum("loss"), p.chosen_reward = sum("chosen_reward");
    p.rejected_reward = sum("rejected_reward"), p.accuracy = sum("accuracy");
    p.chosen_logp = sum("chosen_logp"), p.rejected_logp = sum("rejected_logp");
    p.n = st.integer("n");
    return p;
  }
  void log_to(json::Value& m, const std::string& prefix) const {
    const double d = double(std::max<int64_t>(n, 1));
    m.set(prefix + "loss", loss / d);
    m.set(prefix + "chosen_reward", chosen_reward / d);
    m.set(prefix + "rejected_reward", rejected_reward / d);
    m.set(prefix + "margin", (chosen_reward - rejected_reward) / d);
    m.set(prefix + "accuracy", accuracy / d);
    m.set(prefix + "chosen_logp", chosen_logp / d);
    m.set(prefix + "rejected_logp", rejected_logp / d);
  }
};

}  // namespace

static void check_config(const DPOConfig& cfg) {
  const char* cmd = "rlft lm dpo: ";
  RLFT_CHECK(!cfg.prefs.empty(), cmd, "--prefs is required");
  RLFT_CHECK(!cfg.init.empty(), cmd, "--init (an SFT run) is required");
  const double inf = HUGE_VAL;
  rl::check_number(cmd, "--beta", cfg.beta, 0, true, inf, "a positive number");
  const DPOLossType type = parse_dpo_loss(cfg.loss);
  // Half-open ranges [0, x): the largest double below x is the closed upper end.
  rl::check_number(cmd, "--label-smoothing", cfg.label_smoothing, 0, false,
                   std::nextafter(0.5, 0.0), "in [0, 0.5)");
  RLFT_CHECK(cfg.label_smoothing == 0 || type == DPOLossType::cdpo, cmd,
             "--label-smoothing applies to --loss cdpo only (the loss is ", cfg.loss, ")");
  RLFT_CHECK(cfg.epochs > 0, cmd, "--epochs must be > 0, got ", cfg.epochs);
  RLFT_CHECK(cfg.batch > 0, cmd, "--batch must be > 0, got ", cfg.batch);
  RLFT_CHECK(cfg.grad_accum > 0, cmd, "--grad-accum must be > 0, got ", cfg.grad_accum);
  RLFT_CHECK(cfg.batch % cfg.grad_accum == 0, cmd, "--batch ", cfg.batch,
             " is not divisible by --grad-accum ", cfg.grad_accum,
             " (each step's pairs are cut into micro-batches of --batch / --grad-accum pairs)");
  rl::check_number(cmd, "--lr", cfg.lr, 0, true, inf, "a positive number");
  rl::check_number(cmd, "--grad-clip", cfg.grad_clip, 0, false, inf, "a number >= 0 (0: off)");
  rl::check_number(cmd, "--eval-fraction", cfg.eval_fraction, 0, false, std::nextafter(1.0, 0.0),
                   "in [0, 1)");
  RLFT_CHECK(cfg.log_every > 0, cmd, "--log-every must be > 0, got ", cfg.log_every);
  RLFT_CHECK(cfg.eval_every >= 0, cmd,
             "--eval-every must be >= 0 (0: only at the start and end), got ", cfg.eval_every);
  rl::check_count(cmd, "--eval-samples", cfg.eval_samples);
  RLFT_CHECK(cfg.max_steps >= 0, cmd, "--max-steps must be >= 0 (0: all epochs), got ",
             cfg.max_steps);
  rl::check_checkpoint_options(cmd, cfg.checkpoint_every, cfg.stop_after);
  // --out-dir and --name, checked before any loading; the run is not its own input.
  rl::check_not_the_run(rl::run_path(cfg.out_dir, cfg.name), {{"--init", cfg.init}});
  rl::resolve_device(cfg.device);
}

DPOResult train_dpo(const DPOConfig& given) {
  check_config(given);
  const Device dev = rl::resolve_device(given.device);
  const DPOLossType type = parse_dpo_loss(given.loss);
  const json::Value recorded =
      recorded_config(given.resume ? rl::run_path(given.out_dir, given.name) : "");
  // The inputs from the root: a resume from another directory reads the same files.
  DPOConfig cfg = given;
  cfg.prefs = recorded_input_path(cfg.prefs, "prefs", recorded);
  cfg.init = recorded_input_path(cfg.init, "init", recorded);
  // A resume reads the pairs and the SFT run the run started with: checked before they are read.
  const json::Value fingerprints = fingerprint_inputs(
      {file_input("--prefs", cfg.prefs), run_input("--init", cfg.init)}, recorded);
  std::vector<PreferencePair> pairs = read_preferences(cfg.prefs);
  const LoadedModel policy_run = load_policy(cfg.init, dev), ref_run = load_policy(cfg.init, dev);
  models::GPT& policy = *policy_run.model;
  models::GPT& ref = *ref_run.model;
  const models::Tokenizer& tok = policy_run.tokenizer;
  // Every pair tokenized and fitted to the context before the run's first write.
  check_preferences(pairs, tok, policy.config().block_size, cfg.prefs);
  for (Tensor p : ref.parameters()) p.set_requires_grad(false);
  ref.eval();
  Generator gen(cfg.seed);
  for (size_t i = pairs.size(); i > 1; --i) std::swap(pairs[i - 1], pairs[gen.below(i)]);
  // ⌊n·f⌋ pairs held out: none for a small file (or --eval-fraction 0), and then no held-out
  // numbers are logged or printed.
  const size_t n_eval = size_t(double(pairs.size()) * cfg.eval_fraction);
  const std::vector<PreferencePair> heldout(pairs.end() - long(n_eval), pairs.end());
  std::vector<PreferencePair> train(pairs.begin(), pairs.end() - long(n_eval));
  RLFT_CHECK(!train.empty(), cfg.prefs, ": no training pairs left after holding out ", n_eval,
             " of ", pairs.size(), " (--eval-fraction ", cfg.eval_fraction, ")");
  // Validation prompts, each eval_samples times, for kl and ground_truth; they must leave room
  // for a response in the context (checked here, not at the first evaluation).
  std::vector<std::string> eval_prompts;
  {
    const std::unique_ptr<Task> task = make_task(task_config_of(policy_run));
    for (const std::string& p : task->prompts(Split::validation))
      for (int64_t j = 0; j < cfg.eval_samples; ++j) eval_prompts.push_back(p);
    RLFT_CHECK(!eval_prompts.empty(), cfg.init, ": its task '", task->name(),
               "' has no validation prompts to evaluate the policy on");
    clamp_to_context(models::SamplingConfig{}, policy, tok, eval_prompts);
  }

  json::Value config_json = to_json(cfg);
  // A resume: the same pairs, policy and loss as the run was started with; the budget may
  // grow, and --grad-accum may change (the same steps up to float rounding).
  const rl::RunDir run = rl::open_run(rl::run_path(cfg.out_dir, cfg.name), cfg.resume, config_json,
                                      {"epochs", "max_steps", "grad_accum"});
  record_fingerprints(config_json, fingerprints);
  const std::string ckpt = run.path("checkpoint.safetensors");
  optim::Adam opt(policy.parameters(), cfg.lr);
  // Resume: the step, the weights and Adam's moments from the checkpoint; metrics after it go.
  int64_t start = 0;
  PairStats window;  // the sums since the last logged step
  std::vector<double> gts, kls, eval_x;
  DPOResult res;
  res.run_dir = run.dir();
  if (cfg.resume) {
    // The checkpoint's model and tokenizer are the --init run's, checked before its weights.
    const Metadata meta = load_training_checkpoint(ckpt, policy, opt, tok, "--init " + cfg.init);
    RLFT_CHECK(meta.count("step"), ckpt, ": no step in the checkpoint's metadata");
    start = metadata_int(meta, "step", ckpt);
    if (const auto w = meta.find("dpo_window"); w != meta.end())
      window = PairStats::from_state(w->second, ckpt);
    run.keep_metrics_through(start, "step", [&](const json::Value& line) {
      const int64_t s = line.at("step").as_int();
      if (line.contains("kl") && line.contains("ground_truth")) {
        PolicyEval pe{
            rl::metric_number(line, "ground_truth"), rl::metric_number(line, "kl"),
            line.contains("response_length") ? rl::metric_number(line, "response_length") : 0.0};
        if (s == 0) {
          res.before = pe;
        } else {
          eval_x.push_back(double(s)), gts.push_back(pe.ground_truth), kls.push_back(pe.kl);
        }
      }
    });
  }
  res.start_step = res.step = start;
  run.write_config(config_json);
  rl::Stopwatch clock;
  // π_ref's log-probs, once (ALGORITHMS.md §5). Kept aligned with `train` by shuffling indices.
  const auto [ref_c, ref_r] = cache_ref(ref, tok, train);
  // Plain references, not a structured binding: the evaluation lambda captures them (Clang
  // before 16 cannot capture a structured binding).
  const auto heldout_ref = cache_ref(ref, tok, heldout);
  const std::vector<double>& ref_hc = heldout_ref.first;
  const std::vector<double>& ref_hr = heldout_ref.second;
  const DType dt = policy.config().dtype;

  auto evaluate = [&](int64_t step, json::Value& m) {
    PairStats hs;
    {
      NoGradGuard ng;
      policy.eval();
      for (size_t s = 0; s < heldout.size(); s += 64) {
        const size_t e = std::min(heldout.size(), s + 64);
        const auto [pc, pr] = pair_log_probs(policy, tok, heldout, s, e);
        hs.add(dpo_loss(pc, pr, slice(ref_hc, s, e, dt, dev), slice(ref_hr, s, e, dt, dev),
                        cfg.beta, type, cfg.label_smoothing),
               pc, pr);
      }
      policy.train();
    }
    if (hs.n > 0) hs.log_to(m, "heldout_");
    Generator g(cfg.seed + 12345);  // the same samples' randomness at every evaluation
    const PolicyEval pe = evaluate_policy(policy, ref, tok, eval_prompts, 1.0, g);
    m.set("kl", pe.kl);
    m.set("ground_truth", pe.ground_truth);
    m.set("response_length", pe.response_length);
    if (!cfg.quiet && hs.n > 0)
      std::printf(
          "eval step %5lld  held-out acc %.3f margin %+.3f  samples: ground truth %.3f  KL %.2f  "
          "len %.1f\n",
          (long long)step, hs.accuracy / double(hs.n),
          (hs.chosen_reward - hs.rejected_reward) / double(hs.n), pe.ground_truth, pe.kl,
          pe.response_length);
    else if (!cfg.quiet)
      std::printf("eval step %5lld  samples: ground truth %.3f  KL %.2f  len %.1f\n",
                  (long long)step, pe.ground_truth, pe.kl, pe.response_length);
    res.heldout_accuracy = hs.accuracy / double(std::max<int64_t>(hs.n, 1));
    res.heldout_pairs = hs.n;
    return pe;
  };
  if (start == 0) {
    json::Value m = json::Value::object();
    m.set("step", int64_t(0));
    res.before = evaluate(0, m);
    run.log(m);
  }
  auto save = [&](int64_t at) {
    Metadata meta = checkpoint_metadata(policy.config(), tok, policy_run.run_config, at);
    meta["dpo_window"] = window.to_json().dump();
    run.sync_log();
    save_checkpoint(ckpt, policy, &opt, meta);
  };
  std::vector<size_t> order(train.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  const int64_t steps_per_epoch =
      int64_t((train.size() + size_t(cfg.batch) - 1) / size_t(cfg.batch));
  int64_t step = start;
  policy.train();
  bool done = cfg.max_steps > 0 && step >= cfg.max_steps;
  const int64_t stop_at = cfg.stop_after > 0 ? start + cfg.stop_after : -1;
  for (int64_t epoch = 0; epoch < cfg.epochs && !done; ++epoch) {
    // Every epoch's shuffle is drawn, also the ones a resumed run has done: the generator then
    // reaches the resumed epoch in the state a straight run has there.
    for (size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[gen.below(i)]);
    const int64_t first_step = epoch * steps_per_epoch;
    if (first_step + steps_per_epoch <= start) continue;
    const size_t skip = size_t(std::max<int64_t>(start - first_step, 0)) * size_t(cfg.batch);
    for (size_t s = skip; s < order.size() && !done; s += size_t(cfg.batch)) {
      const size_t e = std::min(order.size(), s + size_t(cfg.batch));
      std::vector<PreferencePair> batch;
      std::vector<double> rc, rr;
      for (size_t i = s; i < e; ++i) {
        batch.push_back(train[order[i]]);
        rc.push_back(ref_c[order[i]]), rr.push_back(ref_r[order[i]]);
      }
      // This step's role, known before it runs: the grad norm is measured on logged steps only.
      const int64_t next = step + 1;
      done = cfg.max_steps > 0 && next >= cfg.max_steps;
      const bool last = done || (epoch + 1 == cfg.epochs && e == order.size());
      const bool stopping = next == stop_at && !last;  // --stop-after, before the end
      const bool do_eval = last || (cfg.eval_every > 0 && next % cfg.eval_every == 0);
      const bool do_log = next % cfg.log_every == 0 || do_eval;
      // --grad-accum K: micro-batches of batch/K pairs, each mean loss weighted by its share of
      // the step's pairs, so the summed gradients are the step's; K = 1 is one plain pass.
      // The policy's dropout masks (when its SFT run has dropout) of step s depend on (seed, s)
      // only, as SFT's do: a resumed run draws the straight run's.
      policy.dropout_generator().set_state(cfg.seed ^ 0xd0d9011ull, uint64_t(step) << 32);
      opt.zero_grad();
      const size_t n = batch.size(), micro = size_t(cfg.batch / cfg.grad_accum);
      double step_loss = 0;
      for (size_t a = 0; a < n; a += micro) {
        const size_t b = std::min(n, a + micro);
        const auto [pc, pr] = pair_log_probs(policy, tok, batch, a, b);
        const DPOLoss l = dpo_loss(pc, pr, slice(rc, a, b, dt, dev), slice(rr, a, b, dt, dev),
                                   cfg.beta, type, cfg.label_smoothing);
        if (b - a == n) {
          l.loss.backward();
          step_loss = l.loss.item();
        } else {
          const double w = double(b - a) / double(n);
          mul(l.loss, w).backward();
          step_loss += l.loss.item() * w;
        }
        window.add(l, pc.detach(), pr.detach());
      }
      // The global gradient norm before clipping, of the logged steps: clip_grad_norm returns it;
      // without clipping it is measured on those steps only (a host synchronisation on a GPU).
      double gn = 0;
      if (cfg.grad_clip > 0)
        gn = optim::clip_grad_norm(policy.parameters(), cfg.grad_clip);
      else if (do_log)
        gn = optim::grad_norm(policy.parameters());
      opt.step();
      ++step;
      res.losses.push_back(step_loss);
      if (do_log) {
        json::Value m = json::Value::object();
        m.set("step", step);
        m.set("epoch", epoch);
        window.log_to(m, "");
        m.set("grad_norm", gn);
        if (do_eval) {
          const PolicyEval pe = evaluate(step, m);
          if (last) res.after = pe, res.finished = true;
          eval_x.push_back(double(step)), gts.push_back(pe.ground_truth), kls.push_back(pe.kl);
        }
        m.set("elapsed_seconds", clock.seconds());
        run.log(m);
        if (!cfg.quiet)
          std::printf(
              "step %5lld  loss %.4f  margin %+.3f  acc %.3f  chosen logp %.2f  rejected logp %.2f "
              " %.0fs\n",
              (long long)step, window.loss / double(window.n),
              (window.chosen_reward - window.rejected_reward) / double(window.n),
              window.accuracy / double(window.n), window.chosen_logp / double(window.n),
              window.rejected_logp / double(window.n), clock.seconds());
        window = PairStats{};
      }
      if (stopping) {
        save(step);  // --stop-after: checkpoint and leave, to be resumed
        if (!cfg.quiet) std::printf("stopped after step %lld (--stop-after)\n", (long long)step);
        res.step = step;
        return res;
      }
      if (cfg.checkpoint_every > 0 && step % cfg.checkpoint_every == 0 && !last) save(step);
    }
  }
  if (!gts.empty())
    plot::write_line_plot(
        run.path("ground_truth.svg"), "DPO samples on validation prompts", "step", "value",
        {{"ground truth p(positive)", eval_x, gts}, {"KL to reference", eval_x, kls}});
  save(step);
  res.step = step;
  return res;
}

}  // namespace rlft::llm
