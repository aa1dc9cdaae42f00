#include "engine/optim.h"

#include <algorithm>
#include <atomic>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <map>
#include <tuple>

#include "engine/ops.h"
#include "kernels/cpu/optim.h"
#include "kernels/cuda_ops.h"

namespace rlft::optim {

namespace {
// set_cuda_adam_layout's choice (0: none; atomic, a step on one thread may read it while
// another sets it).
std::atomic<int> g_adam_layout{0};

// The layout a device step uses: the setter's, else RLFT_ADAM_LAUNCH's, else chunked.
int adam_layout() {
  if (const int set = g_adam_layout.load(std::memory_order_relaxed)) return set;
  const char* env = std::getenv("RLFT_ADAM_LAUNCH");
  if (env == nullptr || *env == 0) return kernels::cuda_ops::kAdamLayoutChunked;
  return parse_cuda_adam_layout(env, "RLFT_ADAM_LAUNCH");
}

template <typename F>
void for_each_float(const Tensor& t, F&& f) {
  RLFT_CHECK(t.is_contiguous(), "optimizer: parameter of shape ", t.shape(), " is not contiguous");
  dispatch_float(t.dtype(), "optimizer", [&](auto tag) { f(tag); });
}
}  // namespace

int parse_cuda_adam_layout(const std::string& name, const char* what) {
  if (name == "grid") return kernels::cuda_ops::kAdamLayoutGrid;
  if (name == "chunked") return kernels::cuda_ops::kAdamLayoutChunked;
  throw Error(str(what, ": unknown Adam launch layout '", name, "' (layouts: grid, chunked)"));
}

void set_cuda_adam_layout(const std::string& name) {
  g_adam_layout.store(name.empty() ? 0 : parse_cuda_adam_layout(name, "set_cuda_adam_layout"),
                      std::memory_order_relaxed);
}

std::string cuda_adam_layout() {
  return adam_layout() == kernels::cuda_ops::kAdamLayoutChunked ? "chunked" : "grid";
}

Optimizer::Optimizer(std::vector<Tensor> params, double lr) : params_(std::move(params)), lr_(lr) {
  RLFT_CHECK(lr >= 0 && std::isfinite(lr), "optimizer: learning rate must be finite and >= 0, got ", lr);
  for (size_t i = 0; i < params_.size(); ++i) {
    RLFT_CHECK(params_[i].defined() && params_[i].requires_grad(), "optimizer: parameter ", i,
               " does not require grad");
    RLFT_CHECK(params_[i].is_contiguous(), "optimizer: parameter ", i, " is not contiguous");
  }
}

void Optimizer::zero_grad() {
  for (const Tensor& p : params_) p.impl()->grad.reset();
}

std::vector<std::pair<std::string, Tensor>> Optimizer::state() const {
  return {{"step", Tensor::from_vector(std::vector<int64_t>{steps_}, {1})}};
}

void Optimizer::load_state(const std::vector<std::pair<std::string, Tensor>>& state) {
  std::map<std::string, Tensor> by_name(state.begin(), state.end());
  auto it = by_name.find("step");
  RLFT_CHECK(it != by_name.end(), "optimizer state: missing entry 'step'");
  RLFT_CHECK(it->second.numel() == 1, "optimizer state: 'step' has shape ", it->second.shape(),
             ", not one number");
  const double s = it->second.item();
  RLFT_CHECK(std::isfinite(s) && s >= 0 && s == std::floor(s) && s <= 9007199254740992.0,
             "optimizer state: 'step' is ", s, ", not a count of steps (a whole number >= 0)");
  steps_ = int64_t(s);
}

std::vector<std::pair<std::string, Tensor>> Optimizer::slot_state(const std::string& prefix,
                                                                  const std::vector<Tensor>& slots) const {
  std::vector<std::pair<std::string, Tensor>> out;
  for (size_t i = 0; i < slots.size(); ++i)
    if (slots[i].defined()) out.emplace_back(prefix + "." + std::to_string(i), slots[i]);
  return out;
}

namespace {
using State = std::vector<std::pair<std::string, Tensor>>;

// Every entry of an optimiser's state is one of `names` or "<prefix>.<i>" for one of `prefixes`
// and a parameter index i < n (written as to_string writes it): a state holding anything else
// was not written by this optimiser for these parameters.
void check_state_names(const State& state, const std::vector<std::string>& names,
                       const std::vector<std::string>& prefixes, size_t n) {
  for (const auto& [name, t] : state) {
    bool known = std::find(names.begin(), names.end(), name) != names.end();
    for (const std::string& prefix : prefixes) {
      if (known || name.size() <= prefix.size() + 1 ||
          name.compare(0, prefix.size(), prefix) != 0 || name[prefix.size()] != '.')
        continue;
      // i as to_string writes it: digits, no leading zero ("01" is not slot 1), below n.
      const std::string index = name.substr(prefix.size() + 1);
      size_t i = 0;
      const auto [end, ec] = std::from_chars(index.data(), index.data() + index.size(), i);
      known = ec == std::errc() && end == index.data() + index.size() && i < n &&
              std::to_string(i) == index;
    }
    if (known) continue;
    std::string expected;
    for (const std::string& s : names) expected += "'" + s + "', ";
    for (const std::string& s : prefixes) expected += "'" + s + ".<i>', ";
    throw Error(str("optimizer state: unexpected entry '", name, "' (expected ", expected, "i < ",
                    n, " parameters)"));
  }
}

// The entries "<prefix>.<i>" of `state`, checked against the parameters' shapes and every value
// (finite; >= 0 too for a second moment, whose square root Adam takes): read and checked
// whole, so a caller can check everything before it replaces any slot (assign_slots).
std::vector<std::pair<size_t, Tensor>> read_slots(const State& state, const std::string& prefix,
                                                  const std::vector<Tensor>& params,
                                                  bool non_negative = false) {
  std::map<std::string, Tensor> by_name(state.begin(), state.end());
  std::vector<std::pair<size_t, Tensor>> loaded;
  for (size_t i = 0; i < params.size(); ++i) {
    auto it = by_name.find(prefix + "." + std::to_string(i));
    if (it == by_name.end()) continue;
    RLFT_CHECK(it->second.shape() == params[i].shape(), "optimizer state: '", it->first, "' has shape ",
               it->second.shape(), " but parameter ", i, " has ", params[i].shape());
    // One copy per load (rare); the value named as the weights' check names it ("NaN", "+inf").
    const std::vector<double> v = it->second.to_vector();
    for (size_t k = 0; k < v.size(); ++k)
      RLFT_CHECK(std::isfinite(v[k]) && (!non_negative || v[k] >= 0), "optimizer state: '",
                 it->first, "' holds ",
                 std::isnan(v[k])   ? std::string("NaN")
                 : std::isinf(v[k]) ? std::string(v[k] > 0 ? "+inf" : "-inf")
                                    : str(v[k]),
                 " at flat index ", k,
                 non_negative ? " (a second moment: finite and >= 0)" : " (must be finite)");
    loaded.emplace_back(i, it->second);
  }
  return loaded;
}

void assign_slots(const std::vector<std::pair<size_t, Tensor>>& loaded,
                  const std::vector<Tensor>& params, std::vector<Tensor>& slots) {
  for (const auto& [i, t] : loaded)
    slots[i] = t.to(params[i].dtype()).to(params[i].device()).clone();
}
}  // namespace

// ---- SGD -------------------------------------------------------------------------------

SGD::SGD(std::vector<Tensor> params, double lr, double momentum, double weight_decay, bool nesterov, double dampening)
    : Optimizer(std::move(params), lr), momentum_(momentum), weight_decay_(weight_decay), dampening_(dampening),
      nesterov_(nesterov) {
  RLFT_CHECK(momentum >= 0, "SGD: momentum must be >= 0, got ", momentum);
  RLFT_CHECK(!nesterov || (momentum > 0 && dampening == 0), "SGD: Nesterov needs momentum > 0 and no dampening");
  velocity_.resize(params_.size());
}

void SGD::step() {
  ++steps_;
  for (size_t i = 0; i < params_.size(); ++i) {
    const Tensor& p = params_[i];
    const Tensor g = p.grad();
    if (!g.defined()) continue;
    RLFT_CHECK(g.device() == p.device(), "SGD: gradient on ", g.device(), " for a parameter on ", p.device());
    const Tensor gc = g.contiguous();
    // This parameter's first momentum step (its buffer is new), not the optimiser's.
    const bool first = momentum_ != 0 && !velocity_[i].defined();
    if (first) velocity_[i] = Tensor::zeros(p.shape(), p.dtype(), p.device());
    if (p.device().is_cuda()) {
      RLFT_CHECK(p.is_contiguous(), "optimizer: parameter of shape ", p.shape(), " is not contiguous");
      kernels::cuda_ops::sgd_step(kernels::cuda_ops::Type(p.dtype()), p.numel(), p.raw_data(),
                                  gc.raw_data(), momentum_ != 0 ? velocity_[i].raw_data() : nullptr,
                                  lr_, momentum_, dampening_, weight_decay_, nesterov_, first,
                                  p.device().index);
      continue;
    }
    for_each_float(p, [&](auto tag) {
      using T = decltype(tag);
      T* w = p.data<T>();
      const T* gp = gc.data<T>();
      T* v = momentum_ != 0 ? velocity_[i].data<T>() : nullptr;
      for (int64_t k = 0; k < p.numel(); ++k) {
        double d = double(gp[k]) + weight_decay_ * double(w[k]);
        if (v) {
          const double vk = first ? d : momentum_ * double(v[k]) + (1 - dampening_) * d;
          v[k] = T(vk);
          d = nesterov_ ? d + momentum_ * vk : vk;
        }
        w[k] = T(double(w[k]) - lr_ * d);
      }
    });
  }
}

std::vector<std::pair<std::string, Tensor>> SGD::state() const {
  auto s = Optimizer::state();
  auto v = slot_state("momentum_buffer", velocity_);
  s.insert(s.end(), v.begin(), v.end());
  return s;
}

void SGD::load_state(const std::vector<std::pair<std::string, Tensor>>& state) {
  check_state_names(state, {"step"}, {"momentum_buffer"}, params_.size());
  const auto velocity = read_slots(state, "momentum_buffer", params_);
  Optimizer::load_state(state);
  assign_slots(velocity, params_, velocity_);
}

// ---- Adam / AdamW ----------------------------------------------------------------------

Adam::Adam(std::vector<Tensor> params, double lr, double beta1, double beta2, double eps, double weight_decay,
           bool decoupled)
    : Optimizer(std::move(params), lr), beta1_(beta1), beta2_(beta2), eps_(eps), weight_decay_(weight_decay),
      decoupled_(decoupled) {
  RLFT_CHECK(beta1 >= 0 && beta1 < 1 && beta2 >= 0 && beta2 < 1, "Adam: betas must be in [0, 1), got (", beta1,
             ", ", beta2, ")");
  RLFT_CHECK(eps >= 0, "Adam: eps must be >= 0, got ", eps);
  RLFT_CHECK(weight_decay >= 0, "Adam: weight_decay must be >= 0, got ", weight_decay);
  exp_avg_.resize(params_.size());
  exp_avg_sq_.resize(params_.size());
  param_steps_.assign(params_.size(), 0);
  decays_.assign(params_.size(), true);
}

void Adam::set_weight_decay_mask(std::vector<bool> decays) {
  RLFT_CHECK(decays.size() == params_.size(), "Adam: weight-decay mask of ", decays.size(),
             " entries for ", params_.size(), " parameters");
  decays_ = std::move(decays);
}

std::vector<bool> matrices_decay(const std::vector<Tensor>& params) {
  std::vector<bool> out;
  for (const Tensor& p : params) out.push_back(p.dim() >= 2);
  return out;
}

void Adam::step() {
  ++steps_;
  // Bias corrections of a parameter's t-th step: lr / (1 − β1^t) and √(1 − β2^t).
  const auto corrections = [&](int64_t t) {
    const double bc1 = 1 - std::pow(beta1_, double(t)), bc2 = 1 - std::pow(beta2_, double(t));
    return std::pair{lr_ / bc1, std::sqrt(bc2)};
  };
  // Parameters on CUDA devices, by (device, dtype, the parameter's step count: one group when
  // every parameter has had a gradient at every step), and their contiguous gradients kept
  // alive until the launch.
  std::map<std::tuple<int, int, int64_t, bool>, std::vector<kernels::cuda_ops::AdamTensor>>
      on_device;  // key: device, dtype, step count, decays
  std::vector<Tensor> device_grads;
  for (size_t i = 0; i < params_.size(); ++i) {
    const Tensor& p = params_[i];
    const Tensor g = p.grad();
    if (!g.defined()) continue;
    RLFT_CHECK(g.device() == p.device(), "Adam: gradient on ", g.device(), " for a parameter on ", p.device());
    const Tensor gc = g.contiguous();
    if (!exp_avg_[i].defined()) {
      exp_avg_[i] = Tensor::zeros(p.shape(), p.dtype(), p.device());
      exp_avg_sq_[i] = Tensor::zeros(p.shape(), p.dtype(), p.device());
    }
    const int64_t t = ++param_steps_[i];
    // Without weight decay the mask changes nothing: one device group, as without a mask.
    const bool decays = decays_[i] && weight_decay_ != 0;
    const double wd = decays ? weight_decay_ : 0.0;
    if (p.device().is_cuda()) {
      // Updated after the loop, all parameters of a device and dtype in one fused launch.
      RLFT_CHECK(p.is_contiguous(), "optimizer: parameter of shape ", p.shape(), " is not contiguous");
      device_grads.push_back(gc);
      // Index and shape for the kernel's divergence report (read back at the next
      // synchronisation, kernels/cuda_ops.h).
      on_device[{p.device().index, int(p.dtype()), t, decays}].push_back(
          {p.raw_data(), gc.raw_data(), exp_avg_[i].raw_data(), exp_avg_sq_[i].raw_data(),
           p.numel(), int64_t(i), p.shape().data(), p.shape().size()});
      continue;
    }
    const auto [step_size, sqrt_bc2] = corrections(t);
    for_each_float(p, [&](auto tag) {
      using T = decltype(tag);
      const T b1 = T(beta1_), b2 = T(beta2_), one = T(1);
      const kernels::AdamScalars<T> s{b1,    b2,           one - b1,    one - b2, T(1 - lr_ * wd),
                                      T(wd), T(step_size), T(sqrt_bc2), T(eps_),  decoupled_};
      // A run that diverged stops here with its cause, not later in whatever op first meets
      // the NaN ("no finite logit"): the kernel checks the updated weights in the same pass.
      const bool finite = kernels::adam_update_cpu(p.numel(), p.data<T>(), gc.data<T>(),
                                                   exp_avg_[i].data<T>(), exp_avg_sq_[i].data<T>(), s);
      RLFT_CHECK(
          finite, "Adam: step ", steps_, " made parameter ", i, " (shape ", p.shape(),
          ") non-finite: training diverged (a smaller learning rate, or gradient clipping?)");
    });
  }
  if (!on_device.empty()) {
    // The loop above, element for element, in the parameter's type (kernels/cuda/optim.cu).
    // A step that leaves a weight non-finite is found by the kernel and thrown, with the CPU's
    // message, at the next synchronisation (the next host read of a device result).
    for (const auto& [key, tensors] : on_device) {
      const auto& [device, dtype, t, decays] = key;
      const auto [step_size, sqrt_bc2] = corrections(t);
      const double wd = decays ? weight_decay_ : 0.0;
      const kernels::cuda_ops::AdamArgs args{beta1_,   beta2_, 1 - lr_ * wd, wd,     step_size,
                                             sqrt_bc2, eps_,   decoupled_,   steps_, adam_layout()};
      kernels::cuda_ops::adam_step(kernels::cuda_ops::Type(dtype), tensors.data(),
                                   int(tensors.size()), args, device);
    }
  }
}

std::vector<std::pair<std::string, Tensor>> Adam::state() const {
  auto s = Optimizer::state();
  s.emplace_back("param_steps", Tensor::from_vector(param_steps_, {int64_t(param_steps_.size())}));
  auto m = slot_state("exp_avg", exp_avg_), v = slot_state("exp_avg_sq", exp_avg_sq_);
  s.insert(s.end(), m.begin(), m.end());
  s.insert(s.end(), v.begin(), v.end());
  return s;
}

void Adam::load_state(const std::vector<std::pair<std::string, Tensor>>& state) {
  check_state_names(state, {"step", "param_steps"}, {"exp_avg", "exp_avg_sq"}, params_.size());
  // Each parameter's step count: the state's "param_steps", checked before anything is
  // replaced; a state from before per-parameter counts has none, and then every parameter with
  // moments has taken the optimiser's steps (as it had, training every parameter every step).
  std::vector<int64_t> steps;
  bool recorded = false;
  for (const auto& [name, t] : state) {
    if (name != "param_steps") continue;
    RLFT_CHECK(t.dim() == 1 && t.size(0) == int64_t(params_.size()),
               "optimizer state: 'param_steps' has shape ", t.shape(),
               ", not one count per parameter (", params_.size(), ")");
    for (double s : t.to_vector()) {
      RLFT_CHECK(std::isfinite(s) && s >= 0 && s == std::floor(s) && s <= 9007199254740992.0,
                 "optimizer state: 'param_steps' holds ", s,
                 ", not a count of steps (a whole number >= 0)");
      steps.push_back(int64_t(s));
    }
    recorded = true;
  }
  const auto m = read_slots(state, "exp_avg", params_);
  const auto v = read_slots(state, "exp_avg_sq", params_, /*non_negative=*/true);
  // A parameter's two moments are saved together, from its first step on: one without the
  // other (or moments beside a count of 0, or a count without moments) is a damaged state,
  // which would restart one moment at zero with a bias correction for many steps.
  std::vector<int> has(params_.size(), 0);
  for (const auto& e : m) has[e.first] |= 1;
  for (const auto& e : v) has[e.first] |= 2;
  for (size_t i = 0; i < params_.size(); ++i) {
    RLFT_CHECK(has[i] != 1 && has[i] != 2, "optimizer state: '",
               has[i] == 1 ? "exp_avg." : "exp_avg_sq.", i, "' without '",
               has[i] == 1 ? "exp_avg_sq." : "exp_avg.", i,
               "' (a parameter's two moments are saved together)");
    RLFT_CHECK(!recorded || (steps[i] > 0) == (has[i] == 3), "optimizer state: parameter ", i,
               " has ", has[i] == 3 ? "moments" : "no moments", " but 'param_steps' counts ",
               steps[i], " step", steps[i] == 1 ? "" : "s", " for it");
  }
  Optimizer::load_state(state);  // checks 'step'; nothing is replaced before this returns
  assign_slots(m, params_, exp_avg_);
  assign_slots(v, params_, exp_avg_sq_);
  for (size_t i = 0; i < params_.size(); ++i)
    param_steps_[i] = recorded ? steps[i] : exp_avg_[i].defined() ? steps_ : 0;
}

// ---- clipping and schedules ------------------------------------------------------------

double grad_norm(const std::vector<Tensor>& params) { return clip_grad_norm(params, INFINITY); }

double clip_grad_norm(const std::vector<Tensor>& params, double max_norm) {
  RLFT_CHECK(max_norm > 0, "clip_grad_norm: max_norm must be > 0, got ", max_norm);
  double total = 0;
  // Σ g² of the device gradients, accumulated in double on their device in parameter order
  // and copied back once per device (a synchronisation each), not once per parameter.
  Tensor on_device;
  const auto flush = [&] {
    if (on_device.defined()) total += on_device.item();
    on_device = Tensor();
  };
  for (const Tensor& p : params) {
    const Tensor g = p.grad();
    if (!g.defined()) continue;
    if (g.device().is_cuda()) {
      const Tensor gd = g.to(DType::f64);
      const Tensor s = sum(mul(gd, gd));
      if (on_device.defined() && on_device.device() != s.device()) flush();
      on_device = on_device.defined() ? add(on_device, s) : s;
      continue;
    }
    // Σ g² in eight double accumulators (kernels/cpu/optim.h), added to the total in order.
    for_each_float(g, [&](auto tag) {
      using T = decltype(tag);
      double acc[8];
      kernels::sum_of_squares_cpu(g.numel(), g.data<T>(), acc);
      for (double a : acc) total += a;
    });
  }
  flush();
  const double norm = std::sqrt(total);
  const double coef = max_norm / (norm + 1e-6);
  if (coef < 1) {
    for (const Tensor& p : params) {
      const Tensor g = p.grad();
      if (!g.defined()) continue;
      if (g.device().is_cuda()) {
        g.copy_(mul(g, coef));
        continue;
      }
      for_each_float(g, [&](auto tag) {
        using T = decltype(tag);
        kernels::scale_cpu(g.numel(), g.data<T>(), coef);
      });
    }
  }
  return norm;
}

double LRSchedule::at(int64_t step) const {
  RLFT_CHECK(total > 0, "LRSchedule: total steps must be > 0, got ", total);
  switch (kind) {
    case Kind::constant: return base_lr;
    case Kind::linear: {
      const double frac = std::min(1.0, double(step) / double(total));
      return base_lr + (end_lr - base_lr) * frac;
    }
    case Kind::cosine: {
      if (step < warmup) return base_lr * double(step + 1) / double(warmup);
      const double span = double(std::max<int64_t>(total - warmup, 1));
      const double progress = std::min(1.0, double(step - warmup) / span);
      return end_lr + 0.5 * (base_lr - end_lr) * (1 + std::cos(M_PI * progress));
    }
  }
  return base_lr;
}

LRSchedule::Kind LRSchedule::parse(const std::string& name) {
  if (name == "constant") return Kind::constant;
  if (name == "linear") return Kind::linear;
  if (name == "cosine") return Kind::cosine;
  throw Error(str("unknown learning-rate schedule '", name, "' (expected constant, linear or cosine)"));
}

}  // namespace rlft::optim
