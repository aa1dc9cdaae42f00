#include "models/policy.h"

#include <cmath>

#include "engine/json.h"

namespace rlft::models {

namespace {
constexpr double kHalfLog2Pi = 0.9189385332046727;  // ½·log(2π)
}

MLP::MLP(const std::vector<int64_t>& sizes, const std::string& activation, Generator& gen) {
  RLFT_CHECK(sizes.size() >= 2, "MLP: needs at least input and output sizes");
  for (size_t i = 0; i + 1 < sizes.size(); ++i) {
    auto lin = std::make_shared<nn::Linear>(sizes[i], sizes[i + 1], true, gen);
    linears.push_back(lin);
    push_back(lin);
    if (i + 2 < sizes.size()) push_back(nn::make_activation(activation));
  }
}

void MLP::init_orthogonal(double hidden_gain, double out_gain, Generator& gen) {
  for (size_t i = 0; i < linears.size(); ++i)
    linears[i]->init_orthogonal(i + 1 == linears.size() ? out_gain : hidden_gain, 0.0, gen);
}

ActorCritic::ActorCritic(const PolicyConfig& c, Generator& gen) : config_(c) {
  RLFT_CHECK(c.obs_dim > 0 && c.num_actions > 0,
             "ActorCritic: obs_dim and num_actions must be positive, got ", c.obs_dim, " and ",
             c.num_actions);
  RLFT_CHECK(!c.hidden.empty(), "ActorCritic: at least one hidden layer is needed");
  const double sqrt2 = std::sqrt(2.0);
  std::vector<int64_t> sizes = {c.obs_dim};
  sizes.insert(sizes.end(), c.hidden.begin(), c.hidden.end());
  if (c.shared_trunk) {
    // trunk: obs → hidden (activation after every layer), heads: one Linear each.
    std::vector<int64_t> trunk_sizes = sizes;
    trunk_ = register_module("trunk", std::make_shared<MLP>(trunk_sizes, c.activation, gen));
    trunk_->push_back(nn::make_activation(c.activation));
    actor_ = register_module(
        "actor", std::make_shared<MLP>(std::vector<int64_t>{c.hidden.back(), c.num_actions},
                                       c.activation, gen));
    if (c.critic)
      critic_ = register_module(
          "critic",
          std::make_shared<MLP>(std::vector<int64_t>{c.hidden.back(), 1}, c.activation, gen));
    if (c.orthogonal_init) trunk_->init_orthogonal(sqrt2, sqrt2, gen);
  } else {
    std::vector<int64_t> a = sizes, v = sizes;
    a.push_back(c.num_actions);
    v.push_back(1);
    actor_ = register_module("actor", std::make_shared<MLP>(a, c.activation, gen));
    if (c.critic) critic_ = register_module("critic", std::make_shared<MLP>(v, c.activation, gen));
  }
  if (c.orthogonal_init) {
    actor_->init_orthogonal(sqrt2, 0.01, gen);
    if (critic_) critic_->init_orthogonal(sqrt2, 1.0, gen);
  }
  if (!c.discrete) {
    Tensor ls = Tensor::full({c.num_actions}, c.log_std_init);
    if (c.fixed_std)
      log_std_ = ls;
    else
      log_std_ = register_parameter("log_std", ls);
  }
}

Tensor ActorCritic::actor_out(const Tensor& obs) {
  return actor_->forward(trunk_ ? trunk_->forward(obs) : obs);
}

Tensor ActorCritic::value(const Tensor& obs) {
  RLFT_CHECK(critic_ != nullptr, "ActorCritic::value: this policy was built without a critic");
  return critic_->forward(trunk_ ? trunk_->forward(obs) : obs).squeeze(-1);
}

ActionSample ActorCritic::sample(const Tensor& obs, Generator& gen) {
  NoGradGuard ng;
  const Tensor out = actor_out(obs);
  ActionSample s;
  if (config_.discrete) {
    s.actions = multinomial(softmax(out), &gen);
    s.log_probs = softmax_logprob(out, s.actions).first;
  } else {
    const Tensor std = exp(log_std_.to(out.device()));
    s.actions = add(out, mul(randn(out.shape(), &gen).to(out.device()), std));
    s.log_probs = evaluate(obs, s.actions).log_probs;
  }
  return s;
}

ActionEval ActorCritic::evaluate(const Tensor& obs, const Tensor& actions) {
  const Tensor out = actor_out(obs);
  ActionEval e;
  if (config_.discrete) {
    RLFT_CHECK(actions.dtype() == DType::i64,
               "ActorCritic::evaluate: discrete actions must be int64, got ", actions.dtype());
    auto [lp, ent] = softmax_logprob(out, actions);
    e.log_probs = lp;
    e.entropy = ent;
  } else {
    RLFT_CHECK(actions.shape() == out.shape(), "ActorCritic::evaluate: actions ", actions.shape(),
               " do not match the policy's output ", out.shape());
    // log N(a; μ, σ²) summed over action dims.
    // A fixed log_std is not a parameter, so Module::to leaves it where it was made.
    const Tensor log_std = log_std_.to(out.device());
    const Tensor z = div(sub(actions, out), exp(log_std));
    const Tensor per_dim = sub(mul(mul(z, z), -0.5), add(log_std, kHalfLog2Pi));
    e.log_probs = sum(per_dim, {-1});
    const Tensor h = sum(add(log_std, 0.5 + kHalfLog2Pi));
    e.entropy = h.expand({out.shape()[0]});
  }
  return e;
}

Tensor ActorCritic::act_greedy(const Tensor& obs) {
  NoGradGuard ng;
  const Tensor out = actor_out(obs);
  return config_.discrete ? argmax(out, -1) : out;
}

std::string describe(const PolicyConfig& c) {
  json::Value v = json::Value::object();
  v.set("obs_dim", c.obs_dim);
  v.set("discrete", c.discrete);
  v.set("num_actions", c.num_actions);
  json::Value h = json::Value::array();
  for (int64_t x : c.hidden) h.push_back(x);
  v.set("hidden", h);
  v.set("activation", c.activation);
  v.set("shared_trunk", c.shared_trunk);
  v.set("log_std_init", c.log_std_init);
  v.set("fixed_std", c.fixed_std);
  v.set("critic", c.critic);
  return v.dump();
}

double parameter_count(const PolicyConfig& c) {
  // An MLP over `sizes`: a weight matrix and a bias per layer.
  const auto mlp = [](std::vector<int64_t> sizes) {
    double n = 0;
    for (size_t i = 0; i + 1 < sizes.size(); ++i)
      n += double(sizes[i]) * double(sizes[i + 1]) + double(sizes[i + 1]);
    return n;
  };
  std::vector<int64_t> trunk = {c.obs_dim};
  trunk.insert(trunk.end(), c.hidden.begin(), c.hidden.end());
  const int64_t last = c.hidden.empty() ? c.obs_dim : c.hidden.back();
  const auto with = [](std::vector<int64_t> sizes, int64_t out) {
    sizes.push_back(out);
    return sizes;
  };
  const double heads =
      c.shared_trunk ? mlp(trunk) + mlp({last, c.num_actions}) + (c.critic ? mlp({last, 1}) : 0)
                     : mlp(with(trunk, c.num_actions)) + (c.critic ? mlp(with(trunk, 1)) : 0);
  return heads + (!c.discrete && !c.fixed_std ? double(c.num_actions) : 0);
}

PolicyConfig parse_policy_config(const std::string& text, const std::string& source) {
  const std::string what = source + ": metadata policy";
  json::Value v;
  try {
    v = json::parse(text, source);
  } catch (const Error& e) {
    throw Error(str(what, ": ", e.what()));
  }
  RLFT_CHECK(v.is_object(), what, ": expected a JSON object, found ", text.substr(0, 40));
  // field(key, read): the value of `key` read by `read`, or an error naming the field.
  auto field = [&](const char* key, auto read) {
    const json::Value* x = v.find(key);
    RLFT_CHECK(x != nullptr, what, ".", key, ": missing");
    try {
      return read(*x);
    } catch (const Error& e) {
      throw Error(str(what, ".", key, ": ", e.what()));
    }
  };
  auto optional = [&](const char* key, auto read, auto fallback) {
    return v.contains(key) ? field(key, read) : fallback;
  };
  auto as_int = [](const json::Value& x) { return x.as_int(); };
  auto as_bool = [](const json::Value& x) { return x.as_bool(); };
  auto as_double = [](const json::Value& x) { return x.as_double(); };
  constexpr int64_t kMaxSize = 1 << 20;
  auto size = [&](const char* key, int64_t n) {
    RLFT_CHECK(n > 0 && n <= kMaxSize, what, ".", key, ": ", n, " is not a size in [1, ", kMaxSize,
               "]");
    return n;
  };
  PolicyConfig c;
  c.obs_dim = size("obs_dim", field("obs_dim", as_int));
  c.discrete = field("discrete", as_bool);
  c.num_actions = size("num_actions", field("num_actions", as_int));
  c.hidden = field("hidden", [](const json::Value& x) {
    std::vector<int64_t> h;
    for (const auto& e : x.as_array()) h.push_back(e.as_int());
    return h;
  });
  check_hidden_sizes(c.hidden, what + ".hidden");
  c.activation = field("activation", [](const json::Value& x) { return x.as_string(); });
  RLFT_CHECK(c.activation == "tanh" || c.activation == "relu" || c.activation == "gelu" ||
                 c.activation == "sigmoid",
             what, ".activation: unknown activation '", c.activation, "'");
  c.shared_trunk = optional("shared_trunk", as_bool, false);
  c.log_std_init = optional("log_std_init", as_double, 0.0);
  RLFT_CHECK(std::isfinite(c.log_std_init), what, ".log_std_init: ", c.log_std_init,
             " is not finite");
  c.fixed_std = optional("fixed_std", as_bool, false);
  c.critic = optional("critic", as_bool, true);
  c.orthogonal_init = false;  // weights come from the checkpoint
  return c;
}

void check_hidden_sizes(const std::vector<int64_t>& hidden, const std::string& what) {
  RLFT_CHECK(!hidden.empty(), what, ": at least one hidden layer is needed");
  for (size_t i = 0; i < hidden.size(); ++i) {
    RLFT_CHECK(hidden[i] > 0 && hidden[i] <= kMaxHidden, what, ": layer size ", hidden[i],
               " is not in [1, ", kMaxHidden, "]");
    if (i > 0)
      RLFT_CHECK(hidden[i - 1] * hidden[i] <= kMaxLayerWeights, what, ": ", hidden[i - 1], " × ",
                 hidden[i], " weights between two layers is over the limit ", kMaxLayerWeights);
  }
}

}  // namespace rlft::models
