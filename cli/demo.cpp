// `rlft demo`: fits a 2-layer tanh MLP to y = sin(x) with Adam and prints the loss falling,
// a one-minute tour of the engine (Tensor, autograd, nn, optim).
#include <cmath>
#include <cstdio>

#include "engine/nn.h"
#include "engine/optim.h"
#include "cli/args.h"
#include "cli/commands.h"

namespace rlft::cli {

int run_demo(int argc, char** argv, int first) {
  int64_t steps = 2000;
  uint64_t seed = 0;
  Args args("rlft demo", "Fit a 1-64-1 tanh MLP to y = sin(x) with Adam and print the loss falling.");
  args.add("--steps", &steps, "optimizer steps");
  args.add("--seed", &seed, "random seed");
  if (!args.parse(argc, argv, first)) return 0;
  RLFT_CHECK(steps > 0, "--steps: must be positive, got ", steps);
  Generator gen(seed);
  nn::Sequential mlp;
  mlp.push_back(std::make_shared<nn::Linear>(1, 64, true, gen));
  mlp.push_back(std::make_shared<nn::Tanh>());
  mlp.push_back(std::make_shared<nn::Linear>(64, 1, true, gen));
  const Tensor x = Tensor::arange(-3.0, 3.0, 0.01).reshape({-1, 1});
  std::vector<float> ys;
  for (double v : x.to_vector()) ys.push_back(float(std::sin(v)));
  const Tensor y = Tensor::from_vector(ys, x.shape());
  optim::Adam opt(mlp.parameters(), 1e-2);
  std::printf("fitting y = sin(x) on %lld points with a 1-64-1 tanh MLP (%lld parameters)\n",
              (long long)x.shape()[0], (long long)mlp.num_parameters());
  for (int64_t step = 0; step <= steps; ++step) {
    const Tensor diff = sub(mlp.forward(x), y);
    const Tensor loss = mean(mul(diff, diff));
    opt.zero_grad();
    loss.backward();
    opt.step();
    if (step % (steps / 10 > 0 ? steps / 10 : 1) == 0) std::printf("step %5lld  mse %.6f\n", (long long)step, loss.item());
  }
  return 0;
}

}  // namespace rlft::cli
