#include "engine/autograd.h"

#include <algorithm>
#include <atomic>
#include <unordered_map>

#include "engine/ops.h"

namespace rlft {

namespace {
thread_local bool g_grad_enabled = true;
std::atomic<uint64_t> g_node_seq{0};

// grad += g (fresh tensors are never aliased with a caller's, so in place is safe).
void accumulate(Tensor& slot, const Tensor& g) {
  if (!slot.defined()) {
    slot = g;
  } else {
    slot = add(slot, g);
  }
}
}  // namespace

bool grad_enabled() { return g_grad_enabled; }
void set_grad_enabled(bool on) { g_grad_enabled = on; }

bool any_requires_grad(std::initializer_list<const Tensor*> inputs) {
  if (!g_grad_enabled) return false;
  for (const Tensor* t : inputs)
    if (t && t->defined() && t->requires_grad()) return true;
  return false;
}

void record(const char* name, const std::vector<Tensor>& inputs, const std::vector<Tensor>& outputs,
            BackwardFn backward) {
  auto node = std::make_shared<Node>();
  node->name = name;
  node->next.resize(inputs.size());
  node->needs.resize(inputs.size(), 0);
  for (size_t i = 0; i < inputs.size(); ++i) {
    const Tensor& in = inputs[i];
    if (!in.defined() || !in.requires_grad()) continue;
    if (in.grad_fn()) {
      node->next[i].fn = in.grad_fn();
      node->next[i].output_nr = in.impl()->output_nr;
    } else {
      node->next[i].leaf = in.impl_ptr();
    }
    node->needs[i] = 1;
  }
  node->backward = std::move(backward);
  node->num_outputs = int(outputs.size());
  node->seq = g_node_seq.fetch_add(1, std::memory_order_relaxed);
  for (size_t k = 0; k < outputs.size(); ++k) {
    TensorImpl* o = outputs[k].impl();
    o->requires_grad = true;
    o->grad_fn = node;
    o->output_nr = uint32_t(k);
  }
}

void run_backward(const std::vector<Tensor>& roots, const std::vector<Tensor>& grads,
                  bool retain_graph) {
  NoGradGuard no_grad;
  // Collect the nodes reachable from the roots.
  std::vector<Node*> nodes;
  std::unordered_map<Node*, int> seen;
  std::vector<Node*> stack;
  for (size_t r = 0; r < roots.size(); ++r) {
    const Tensor& root = roots[r];
    RLFT_CHECK(root.requires_grad(), "backward: tensor of shape ", root.shape(),
               " does not require grad and has no grad_fn (nothing to differentiate)");
    Tensor g = grads[r];
    if (!g.defined()) {
      RLFT_CHECK(root.numel() == 1, "backward: gradient can be implied only for a scalar output, got shape ",
                 root.shape(), "; pass the gradient explicitly");
      g = Tensor::ones(root.shape(), root.dtype(), root.device());
    }
    RLFT_CHECK(g.shape() == root.shape(), "backward: gradient shape ", g.shape(),
               " does not match the output shape ", root.shape());
    if (root.is_leaf()) {
      TensorImpl* leaf = root.impl();
      Tensor slot = leaf->grad ? Tensor(leaf->grad) : Tensor();
      accumulate(slot, g.to(root.dtype()));
      leaf->grad = slot.impl_ptr();
      continue;
    }
    Node* n = root.grad_fn().get();
    if (n->grad_buffer.empty()) n->grad_buffer.resize(n->num_outputs);
    accumulate(n->grad_buffer[root.impl()->output_nr], g);
    if (!seen.count(n)) {
      seen[n] = 1;
      stack.push_back(n);
    }
  }
  while (!stack.empty()) {
    Node* n = stack.back();
    stack.pop_back();
    nodes.push_back(n);
    for (const Edge& e : n->next)
      if (e.fn && !seen.count(e.fn.get())) {
        seen[e.fn.get()] = 1;
        stack.push_back(e.fn.get());
      }
  }
  // A node's creation number is larger than those of the nodes feeding it, so descending
  // creation order is a topological order.
  std::sort(nodes.begin(), nodes.end(), [](Node* a, Node* b) { return a->seq > b->seq; });

  for (Node* n : nodes) {
    RLFT_CHECK(!n->released, "backward: trying to backward through the graph a second time (node '",
               n->name, "' has freed its saved tensors); pass retain_graph=true to the first backward");
    RLFT_CHECK(n->backward, "backward: op '", n->name, "' has no gradient");
    if (n->grad_buffer.empty()) n->grad_buffer.resize(n->num_outputs);
    Grads in_grads = n->backward(n->grad_buffer, n->needs);
    n->grad_buffer.clear();
    if (!retain_graph) {
      n->backward = nullptr;
      n->released = true;
    }
    RLFT_CHECK(in_grads.size() <= n->next.size(), "backward of '", n->name, "' returned ",
               in_grads.size(), " gradients for ", n->next.size(), " inputs");
    for (size_t i = 0; i < in_grads.size(); ++i) {
      const Edge& e = n->next[i];
      const Tensor& g = in_grads[i];
      if (!e.wants_grad() || !g.defined()) continue;
      if (e.fn) {
        if (e.fn->grad_buffer.empty()) e.fn->grad_buffer.resize(e.fn->num_outputs);
        accumulate(e.fn->grad_buffer[e.output_nr], g);
      } else {
        TensorImpl* leaf = e.leaf.get();
        RLFT_CHECK(g.shape() == leaf->shape, "backward of '", n->name, "': gradient shape ", g.shape(),
                   " does not match its input's shape ", leaf->shape);
        Tensor slot = leaf->grad ? Tensor(leaf->grad) : Tensor();
        if (slot.defined()) {
          slot = add(slot, g);
        } else {
          // Own the gradient: never alias a tensor the backward may have returned as is.
          slot = g.contiguous();
          if (slot.same(g)) slot = g.clone();
        }
        leaf->grad = slot.impl_ptr();
      }
    }
  }
}

void Tensor::backward(const Tensor& grad, bool retain_graph) const {
  RLFT_CHECK(defined(), "backward: undefined tensor");
  run_backward({*this}, {grad}, retain_graph);
}

Tensor sum_to(const Tensor& grad, const Shape& shape) {
  if (grad.shape() == shape) return grad;
  const int lead = grad.dim() - shape.size();
  RLFT_CHECK(lead >= 0, "sum_to: cannot reduce ", grad.shape(), " to ", shape);
  std::vector<int64_t> dims;
  for (int i = 0; i < grad.dim(); ++i) {
    if (i < lead) {
      dims.push_back(i);
    } else if (shape[i - lead] == 1 && grad.shape()[i] != 1) {
      dims.push_back(i);
    }
  }
  Tensor r = dims.empty() ? grad : sum(grad, dims, /*keepdim=*/true);
  return r.reshape(shape);
}

}  // namespace rlft
