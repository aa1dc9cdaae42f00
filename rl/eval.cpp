#include "rl/eval.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "engine/checkpoint.h"
#include "engine/fs.h"
#include "engine/json.h"
#include "models/policy.h"
#include "rl/envs/env.h"
#include "rl/normalize.h"
#include "rl/plot.h"
#include "rl/run.h"

namespace rlft::rl {

EvalResult evaluate_run(const std::string& run_dir, int64_t episodes, uint64_t seed,
                        bool deterministic) {
  RLFT_CHECK(episodes > 0 && episodes <= kMaxEvalEpisodes, "eval: --episodes must be in [1, ",
             kMaxEvalEpisodes, "], got ", episodes);
  const std::string path = run_dir + "/policy.safetensors";
  RLFT_CHECK(fs::exists(path), "eval: no policy at ", path,
             " (train a run first: rlft train ppo --name …)");
  Metadata md;
  // The weights are checked (names, shapes, finite) by load_checkpoint below; here only their
  // count, before a policy is built from the metadata.
  const NamedTensors stored = load_tensors(path, &md);
  RLFT_CHECK(md.count("policy") && md.count("env_id"), path,
             ": not an rlft policy (metadata lacks policy/env_id)");
  const models::PolicyConfig pc = models::parse_policy_config(md.at("policy"), path);
  std::unique_ptr<envs::Env> env;
  try {
    env = envs::make_env(md.at("env_id"));
  } catch (const Error& e) {
    throw Error(str(path, ": metadata env_id: ", e.what()));
  }
  RLFT_CHECK(env->obs_dim() == pc.obs_dim, path, ": policy expects ", pc.obs_dim,
             " observations but ", md.at("env_id"), " has ", env->obs_dim());
  const auto& space = env->action_space();
  RLFT_CHECK(pc.discrete == space.is_discrete() &&
                 pc.num_actions == (space.is_discrete() ? space.n : env->action_dim()),
             path, ": the policy's actions (", pc.discrete ? "discrete, " : "continuous, ",
             pc.num_actions, ") do not fit ", md.at("env_id"), "'s action space ",
             space.to_string());
  // A corrupt or hand-edited architecture (many wide hidden layers) must not take gigabytes to
  // build before the shapes are compared.
  const double stored_weights = stored_weight_count(stored);
  RLFT_CHECK(stored_weights == models::parameter_count(pc), path, ": its tensors hold ",
             int64_t(stored_weights), " weights but its metadata policy describes ",
             int64_t(models::parameter_count(pc)), " (a corrupt or hand-edited policy file)");
  Generator gen(seed);
  models::ActorCritic policy(pc, gen);
  load_checkpoint_tensors(stored, path, policy);  // the file is read once
  std::unique_ptr<RunningMeanStd> obs_rms;
  if (md.count("obs_rms"))
    obs_rms = std::make_unique<RunningMeanStd>(
        RunningMeanStd::from_metadata(md.at("obs_rms"), path, pc.obs_dim));

  const int64_t O = env->obs_dim(), A = env->action_dim();
  EvalResult r;
  r.env_id = md.at("env_id");
  std::vector<float> obs(static_cast<size_t>(O)), act(static_cast<size_t>(A));
  for (int64_t e = 0; e < episodes; ++e) {
    env->reset(seed + uint64_t(e), obs.data());
    double total = 0;
    while (true) {
      std::vector<float> x = obs;
      if (obs_rms) obs_rms->normalize(obs.data(), 1, x.data());
      const Tensor o = Tensor::from_vector(x, {1, O});
      const Tensor a = deterministic ? policy.act_greedy(o) : policy.sample(o, gen).actions;
      envs::StepResult s;
      if (space.is_discrete()) {
        s = env->step(int64_t(a.item()), obs.data());
      } else {
        const std::vector<float> av = a.to_float_vector();
        for (int64_t j = 0; j < A; ++j) act[j] = std::clamp(av[j], space.low[j], space.high[j]);
        s = env->step(act.data(), obs.data());
      }
      total += s.reward;
      if (s.done()) break;
    }
    r.returns.push_back(total);
  }
  const double n = double(r.returns.size());
  r.mean = std::accumulate(r.returns.begin(), r.returns.end(), 0.0) / n;
  double v = 0;
  for (double x : r.returns) v += (x - r.mean) * (x - r.mean);
  r.std = std::sqrt(v / n);
  r.min = *std::min_element(r.returns.begin(), r.returns.end());
  r.max = *std::max_element(r.returns.begin(), r.returns.end());
  return r;
}

std::string write_learning_curve(const std::string& run_dir, int64_t* skipped, bool* cut) {
  const std::string path = run_dir + "/metrics.jsonl";
  RLFT_CHECK(fs::exists(path), "plot: no metrics at ", path);
  const std::vector<json::Value> lines = read_metrics(path, cut);
  plot::Series mean{"return (mean of episodes in the update)", {}, {}},
      last20{"return (last 20 episodes)", {}, {}};
  std::string title = run_dir;
  for (size_t i = 0; i < lines.size(); ++i) {
    const json::Value& m = lines[i];
    const json::Value* step_value = m.is_object() ? m.find("global_step") : nullptr;
    RLFT_CHECK(step_value && step_value->is_number(), "plot: ", path, ": record ", i + 1,
               " has no numeric \"global_step\": not the metrics of a classic-control run (rlft "
               "train ppo|reinforce)");
    const double step = step_value->as_double();
    if (const json::Value* v = m.find("episodic_return_mean"); v && v->is_number()) {
      mean.x.push_back(step);
      mean.y.push_back(v->as_double());
    } else if (const json::Value* w = m.find("episodic_return"); w && w->is_number()) {
      mean.x.push_back(step);
      mean.y.push_back(w->as_double());
    }
    if (const json::Value* v = m.find("return_last20"); v && v->is_number()) {
      last20.x.push_back(step);
      last20.y.push_back(v->as_double());
    }
  }
  RLFT_CHECK(!mean.x.empty() || !last20.x.empty(), path, ": no episodic returns logged yet");
  const std::string out = run_dir + "/return.svg";
  const std::vector<plot::Series> series = {mean, last20};
  plot::write_line_plot(out, title, "environment steps", "episodic return", series);
  if (skipped) *skipped = plot::count_unplottable(series);
  return out;
}

}  // namespace rlft::rl
