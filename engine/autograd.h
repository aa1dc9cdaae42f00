// Define-by-run reverse-mode autograd.
//
// An op that has an input requiring grad (and grad mode on) records a Node: the edges to its
// inputs' producers (or to the leaf tensors themselves) and a backward function mapping the
// gradients of its outputs to the gradients of its inputs. Tensor::backward() orders the
// reachable nodes topologically, runs each backward once with grad mode off, accumulates
// (+=) gradients flowing into the same tensor, and finally adds them to the leaves' .grad.
// Saved tensors live in the backward closure and are freed after backward unless
// retain_graph is set; running backward through a freed node is an error.
#pragma once

#include <functional>
#include <initializer_list>
#include <memory>
#include <vector>

#include "engine/tensor.h"

namespace rlft {

using Grads = std::vector<Tensor>;
// needs[i]: whether input i wants a gradient (the backward may skip the others).
using Needs = std::vector<char>;
using BackwardFn = std::function<Grads(const Grads& grad_outputs, const Needs& needs)>;

struct Edge {
  std::shared_ptr<Node> fn;          // producer of the input (non-leaf) …
  uint32_t output_nr = 0;
  std::shared_ptr<TensorImpl> leaf;  // … or the leaf itself; both null: no gradient wanted
  bool wants_grad() const { return fn != nullptr || leaf != nullptr; }
};

struct Node {
  const char* name = "";
  std::vector<Edge> next;  // one edge per input of the op
  Needs needs;             // needs[i] == next[i].wants_grad()
  BackwardFn backward;
  Grads grad_buffer;       // gradients of the outputs, summed during a backward pass
  int num_outputs = 1;
  uint64_t seq = 0;        // creation order: later nodes run first
  bool released = false;
};

// True when grad mode is on and any of `inputs` requires grad.
bool any_requires_grad(std::initializer_list<const Tensor*> inputs);
inline bool any_requires_grad(const Tensor& a) { return grad_enabled() && a.defined() && a.requires_grad(); }
inline bool any_requires_grad(const Tensor& a, const Tensor& b) {
  return grad_enabled() && ((a.defined() && a.requires_grad()) || (b.defined() && b.requires_grad()));
}

// Records a node named `name` producing `outputs` from `inputs` (undefined inputs allowed).
// Call only when any_requires_grad(...) holds. Marks every output requires_grad.
void record(const char* name, const std::vector<Tensor>& inputs, const std::vector<Tensor>& outputs,
            BackwardFn backward);
inline void record(const char* name, const std::vector<Tensor>& inputs, const Tensor& output,
                   BackwardFn backward) {
  record(name, inputs, std::vector<Tensor>{output}, std::move(backward));
}

// Runs backward from several roots at once (each with its gradient).
void run_backward(const std::vector<Tensor>& roots, const std::vector<Tensor>& grads,
                  bool retain_graph);

// Sums `grad` over the dimensions that broadcasting expanded so it gets `shape`.
Tensor sum_to(const Tensor& grad, const Shape& shape);

}  // namespace rlft
