// Optimisers, gradient clipping and learning-rate schedules.
//
// SGD:   v ← μ·v + g (+ wd·θ in g);  θ ← θ − lr·(g + μ·v if nesterov else v)       (PyTorch)
// Adam:  m ← β1·m + (1−β1)·g;  v ← β2·v + (1−β2)·g²;  m̂ = m/(1−β1^t), v̂ = v/(1−β2^t);
//        θ ← θ − lr·m̂/(√v̂ + eps); weight decay adds wd·θ to g (L2)            (Kingma & Ba)
// AdamW: as Adam but decoupled decay θ ← θ·(1 − lr·wd) before the update  (Loshchilov & Hutter)
// All state (step count, moments) is exposed as named tensors so checkpoints carry it.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "engine/tensor.h"

namespace rlft::optim {

class Optimizer {
 public:
  explicit Optimizer(std::vector<Tensor> params, double lr);
  virtual ~Optimizer() = default;
  virtual void step() = 0;
  void zero_grad();
  double lr() const { return lr_; }
  void set_lr(double lr) { lr_ = lr; }
  int64_t steps() const { return steps_; }
  const std::vector<Tensor>& params() const { return params_; }
  // Named state tensors ("step", "exp_avg.3", …) for checkpoints, and their restoration
  // (names and shapes must match; errors name the entry).
  virtual std::vector<std::pair<std::string, Tensor>> state() const;
  virtual void load_state(const std::vector<std::pair<std::string, Tensor>>& state);

 protected:
  std::vector<std::pair<std::string, Tensor>> slot_state(const std::string& prefix,
                                                         const std::vector<Tensor>& slots) const;
  std::vector<Tensor> params_;
  double lr_;
  int64_t steps_ = 0;
};

// Momentum starts per parameter, as PyTorch's: a parameter's first step with a gradient sets its
// buffer to that step's direction d (no dampening), later ones to μ·buf + (1 − dampening)·d.
class SGD : public Optimizer {
 public:
  SGD(std::vector<Tensor> params, double lr, double momentum = 0, double weight_decay = 0, bool nesterov = false,
      double dampening = 0);
  void step() override;
  std::vector<std::pair<std::string, Tensor>> state() const override;
  void load_state(const std::vector<std::pair<std::string, Tensor>>& state) override;

 private:
  double momentum_, weight_decay_, dampening_;
  bool nesterov_;
  std::vector<Tensor> velocity_;
};

class Adam : public Optimizer {
 public:
  // decoupled = true gives AdamW.
  Adam(std::vector<Tensor> params, double lr = 1e-3, double beta1 = 0.9, double beta2 = 0.999, double eps = 1e-8,
       double weight_decay = 0, bool decoupled = false);
  // Weight decay for some parameters only (HF Trainer / nanoGPT's groups: matrices and
  // embeddings decay, biases and LayerNorm parameters do not): decays[i] false exempts
  // parameter i. One optimiser, so its state (names, counts) is the same as without groups.
  void set_weight_decay_mask(std::vector<bool> decays);
  // A parameter that the step leaves NaN or ±inf is an rlft::Error naming it, its shape and the
  // step ("training diverged"): on the CPU thrown by step(); on a CUDA device found by the fused
  // kernel and thrown at the next synchronisation (the next host read of any device result,
  // e.g. the next loss's item()), with no synchronisation added to the step.
  void step() override;
  std::vector<std::pair<std::string, Tensor>> state() const override;
  void load_state(const std::vector<std::pair<std::string, Tensor>>& state) override;

 private:
  double beta1_, beta2_, eps_, weight_decay_;
  bool decoupled_;
  std::vector<Tensor> exp_avg_, exp_avg_sq_;
  // Steps each parameter has taken (as PyTorch's per-parameter state['step']): a parameter
  // without a gradient on a step is skipped and does not age, so its bias correction counts
  // its own updates. Checkpoints hold them as "param_steps".
  std::vector<int64_t> param_steps_;
  std::vector<bool> decays_;  // per parameter: weight_decay applies (all, unless a mask is set)
};

// The HF Trainer / nanoGPT decay mask of a parameter list: true for tensors of two or more
// dimensions (matrices, embeddings), false for biases and LayerNorm's gains and shifts.
std::vector<bool> matrices_decay(const std::vector<Tensor>& params);

class AdamW : public Adam {
 public:
  AdamW(std::vector<Tensor> params, double lr = 1e-3, double beta1 = 0.9, double beta2 = 0.999, double eps = 1e-8,
        double weight_decay = 0.01)
      : Adam(std::move(params), lr, beta1, beta2, eps, weight_decay, true) {}
};

// The launch layout of Adam's fused step on CUDA devices (kernels/cuda_ops.h: "chunked", the
// default, or "grid"; the same bits), for benchmarks and tuning runs: set_cuda_adam_layout's
// choice, else the environment variable RLFT_ADAM_LAUNCH (read at every device step), else
// "chunked". A name that is neither is an rlft::Error naming it and where it came from; ""
// goes back to the environment's choice.
void set_cuda_adam_layout(const std::string& name);
std::string cuda_adam_layout();
// The layout of a name (kernels/cuda_ops.h's kAdamLayoutGrid, kAdamLayoutChunked); `what` names
// the name's origin in the error.
int parse_cuda_adam_layout(const std::string& name, const char* what);

// Scales all gradients so their global L2 norm is at most max_norm; returns the norm
// before clipping (as torch.nn.utils.clip_grad_norm_).
double clip_grad_norm(const std::vector<Tensor>& params, double max_norm);
// The global L2 norm of the gradients, leaving them as they are (for logging when clipping is
// off; a synchronisation on a CUDA device, like clip_grad_norm).
double grad_norm(const std::vector<Tensor>& params);

// Learning rate at optimizer step `step` (0-based) of `total`.
struct LRSchedule {
  enum class Kind { constant, linear, cosine };
  Kind kind = Kind::constant;
  double base_lr = 1e-3;
  double end_lr = 0;     // final value of linear decay / cosine floor
  int64_t warmup = 0;    // linear warmup from 0 over the first `warmup` steps (cosine)
  int64_t total = 1;
  double at(int64_t step) const;
  // "constant", "linear", "cosine"; anything else is an error.
  static Kind parse(const std::string& name);
};

}  // namespace rlft::optim
