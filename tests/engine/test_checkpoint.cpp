// Module and optimiser checkpoints: round trip, resume equivalence, and every mismatch
// giving its own error while leaving the model untouched.
#include <gtest/gtest.h>

#include "test_util.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "engine/checkpoint.h"
#include "engine/fs.h"

namespace rlft {
namespace {

struct Net : nn::Module {
  Net(int64_t in, int64_t hidden, Generator& gen) {
    fc1 = register_module("fc1", std::make_shared<nn::Linear>(in, hidden, true, gen));
    fc2 = register_module("fc2", std::make_shared<nn::Linear>(hidden, 1, true, gen));
  }
  Tensor forward(const Tensor& x) override { return fc2->forward(tanh(fc1->forward(x))); }
  std::shared_ptr<nn::Linear> fc1, fc2;
};

std::string tmp_path(const std::string& name) {
  auto dir = std::filesystem::temp_directory_path() / "rlft_test_checkpoint";
  std::filesystem::create_directories(dir);
  return (dir / name).string();
}

double train_step(Net& net, optim::Optimizer& opt, const Tensor& x) {
  Tensor loss = mean(pow(net.forward(x), 2.0));
  opt.zero_grad();
  loss.backward();
  opt.step();
  return loss.item();
}

using testing::error_of;

// Loading `path` into `net` is refused with an error that contains `what` (shown in full where
// it does not), and `weight` (one of `net`'s tensors) stays as it was.
void expect_load_refused(const std::string& path, Net& net, const std::string& what,
                         const Tensor& weight) {
  const auto before = weight.to_vector();
  const std::string e = error_of([&] { load_checkpoint(path, net); });
  EXPECT_NE(e.find(what), std::string::npos) << e;
  EXPECT_EQ(weight.to_vector(), before);
}

TEST(Checkpoint, ResumeGivesIdenticalLosses) {
  Generator gen(0);
  Net a(3, 8, gen);
  optim::Adam opt_a(a.parameters(), 1e-2);
  const Tensor x = randn({16, 3}, &gen);
  train_step(a, opt_a, x);
  const std::string path = tmp_path("resume.safetensors");
  save_checkpoint(path, a, &opt_a, {{"step", "1"}});

  Generator gen2(99);  // different init, overwritten by the load
  Net b(3, 8, gen2);
  optim::Adam opt_b(b.parameters(), 1e-2);
  const Metadata md = load_checkpoint(path, b, &opt_b);
  EXPECT_EQ(md.at("step"), "1");
  for (int i = 0; i < 3; ++i) EXPECT_EQ(train_step(a, opt_a, x), train_step(b, opt_b, x));
}

TEST(Checkpoint, NamesAreModuleNames) {
  Generator gen(0);
  Net a(3, 4, gen);
  const std::string path = tmp_path("names.safetensors");
  save_checkpoint(path, a);
  std::vector<std::string> names;
  for (auto& [n, t] : load_tensors(path)) names.push_back(n);
  // The file orders tensors as the reference writer does (by alignment, then name).
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"fc1.bias", "fc1.weight", "fc2.bias", "fc2.weight"}));
}

TEST(Checkpoint, MismatchesAreNamedAndLeaveTheModelUntouched) {
  Generator gen(0);
  Net small(3, 4, gen), other(3, 5, gen);
  const std::string path = tmp_path("small.safetensors");
  save_checkpoint(path, small);
  expect_load_refused(path, other, "'fc1.weight' has shape [4,3] but the model expects [5,3]",
                      other.fc1->weight);

  // Missing and unexpected names.
  save_tensors(path, {{"fc1.weight", small.fc1->weight}, {"extra", Tensor::zeros({1})}});
  const std::string e = error_of([&] { load_checkpoint(path, small); });
  EXPECT_NE(e.find("missing fc1.bias, fc2.weight, fc2.bias"), std::string::npos) << e;
  EXPECT_NE(e.find("unexpected extra"), std::string::npos) << e;

  // dtype mismatch.
  NamedTensors params = small.named_parameters();
  params[0].second = params[0].second.to(DType::f64);
  save_tensors(path, params);
  EXPECT_NE(error_of([&] { load_checkpoint(path, small); }).find("'fc1.weight' is float64 but the model expects float32"),
            std::string::npos);

  // A bool/uint8 tensor where a float one goes.
  params = small.named_parameters();
  params[1].second = Tensor::zeros({4}, DType::b8);
  save_tensors(path, params);
  EXPECT_NE(error_of([&] { load_checkpoint(path, small); })
                .find("'fc1.bias' is bool or uint8 but the model expects float32"),
            std::string::npos);

  // Weights that are not finite (a diverged run) are refused, naming the tensor and the place.
  params = small.named_parameters();
  std::vector<double> w = params[2].second.to_vector();
  w[3] = std::nan("");
  params[2].second = Tensor::from_vector(w, params[2].second.shape()).to(DType::f32);
  save_tensors(path, params);
  expect_load_refused(path, small,
                      "'fc2.weight' holds NaN at flat index 3 (weights must be finite)",
                      small.fc2->weight);
  w[3] = 0;
  w[2] = -HUGE_VAL;
  params[2].second = Tensor::from_vector(w, params[2].second.shape()).to(DType::f32);
  save_tensors(path, params);
  EXPECT_NE(error_of([&] {
              load_checkpoint(path, small);
            }).find("'fc2.weight' holds -inf at flat index 2"),
            std::string::npos);

  // Optimiser state asked for but absent.
  save_checkpoint(path, small);
  optim::Adam opt(small.parameters());
  EXPECT_NE(error_of([&] { load_checkpoint(path, small, &opt); }).find("no optimizer state"), std::string::npos);
}

// A stored tensor with the model's element count but another shape is refused too: fc1.weight
// of Net(3, 4) is [4, 3]; the same 12 numbers saved as [3, 4] (a transposed layout, as a
// checkpoint from a framework storing W as [in, out] would have) must not load row by row into
// [4, 3]. The model stays as it was.
TEST(Checkpoint, SameElementCountOtherShapeIsRefused) {
  Generator gen(0);
  Net net(3, 4, gen);
  const std::string path = tmp_path("transposed.safetensors");
  NamedTensors params = net.named_parameters();
  ASSERT_EQ(params[0].first, "fc1.weight");
  ASSERT_EQ(params[0].second.shape(), Shape({4, 3}));
  params[0].second = mul(params[0].second.reshape({3, 4}), 2.0);
  save_tensors(path, params);
  expect_load_refused(path, net, "'fc1.weight' has shape [3,4] but the model expects [4,3]",
                      net.fc1->weight);
}
TEST(Checkpoint, TruncatedFileIsAnErrorNotACrash) {
  Generator gen(0);
  Net a(3, 4, gen);
  const std::string path = tmp_path("trunc.safetensors");
  save_checkpoint(path, a);
  std::string bytes = fs::read_file(path);
  const auto before = a.fc2->bias.to_vector();
  for (size_t cut : {size_t(0), size_t(5), size_t(8), bytes.size() / 2, bytes.size() - 1}) {
    fs::atomic_write_file(path, std::string_view(bytes).substr(0, cut));
    EXPECT_THROW(load_checkpoint(path, a), Error) << "cut at " << cut;
  }
  EXPECT_EQ(a.fc2->bias.to_vector(), before);
}

// Adam's state is checked like the weights: a resumed run never steps with NaN moments, a
// negative second moment (whose square root Adam takes) or a step count that is not one.
TEST(Checkpoint, OptimizerStateValuesAreChecked) {
  Generator gen(0);
  Net net(3, 4, gen);
  optim::Adam opt(net.parameters());
  const Tensor x = Tensor::from_vector(std::vector<float>{0.5f, -1.f, 2.f}, {1, 3});
  train_step(net, opt, x);
  const std::string path = tmp_path("adam.safetensors");
  save_checkpoint(path, net, &opt);
  const NamedTensors good = load_tensors(path);
  auto with = [&](const std::string& name, double value) {
    NamedTensors t = good;
    for (auto& [n, v] : t)
      if (n == name) {
        std::vector<double> d = v.to_vector();
        d[0] = value;
        v = Tensor::from_vector(d, v.shape()).to(v.dtype());
      }
    save_tensors(path, t);
  };
  const struct {
    std::string name;
    double value;
    std::string expect;
  } cases[] = {
      {"optimizer.exp_avg.0", std::nan(""),
       "optimizer state: 'exp_avg.0' holds NaN at flat index 0 (must be finite)"},
      {"optimizer.exp_avg_sq.1", -1,
       "'exp_avg_sq.1' holds -1 at flat index 0 (a second moment: finite and >= 0)"},
      {"optimizer.exp_avg_sq.0", HUGE_VAL, "'exp_avg_sq.0' holds +inf"},
      {"optimizer.step", -5, "optimizer state: 'step' is -5, not a count of steps"},
  };
  for (const auto& c : cases) {
    with(c.name, c.value);
    Net other(3, 4, gen);
    optim::Adam o(other.parameters());
    const std::string e = error_of([&] { load_checkpoint(path, other, &o); });
    EXPECT_EQ(e.rfind(path + ": ", 0), 0u) << e;
    EXPECT_NE(e.find(c.expect), std::string::npos) << c.name << ": " << e;
  }
  save_tensors(path, good);
  Net other(3, 4, gen);
  optim::Adam o(other.parameters());
  EXPECT_NO_THROW(load_checkpoint(path, other, &o));
}

// Numbers in the metadata: each way of being wrong names the file and the key.
TEST(Checkpoint, MetadataNumbersAreCheckedAndNamed) {
  const Metadata m{{"step", "12"},
                   {"neg", "-3"},
                   {"word", "abc"},
                   {"tail", "7x"},
                   {"big", "99999999999999999999"},
                   {"empty", ""},
                   {"lr", "0.5"},
                   {"nan", "nan"},
                   {"off", "18446744073709551615"},
                   {"space", " 5"},
                   {"plus", "+5"},
                   {"hex", "0x10"},
                   {"small", "-1.5e-07"}};
  EXPECT_EQ(metadata_int(m, "step", "f.safetensors"), 12);
  EXPECT_EQ(metadata_int(m, "neg", "f", -5, 5), -3);
  EXPECT_EQ(metadata_uint(m, "off", "f"), 18446744073709551615ull);
  EXPECT_EQ(metadata_double(m, "lr", "f"), 0.5);
  EXPECT_EQ(metadata_double(m, "small", "f"), -1.5e-07);
  // Only numbers as rlft writes them: strtoll/strtod's leading space, '+' and hexadecimal are
  // not (a hand-edited or corrupt file).
  for (const char* key : {"space", "plus", "hex"}) {
    EXPECT_NE(error_of([&] { (void)metadata_int(m, key, "f"); }).find("not an integer"),
              std::string::npos)
        << key;
    EXPECT_NE(error_of([&] { (void)metadata_uint(m, key, "f"); }).find("not an unsigned integer"),
              std::string::npos)
        << key;
    EXPECT_NE(error_of([&] { (void)metadata_double(m, key, "f"); }).find("not a finite number"),
              std::string::npos)
        << key;
  }
  EXPECT_EQ(error_of([&] { (void)metadata_int(m, "word", "f.safetensors"); }),
            "f.safetensors: metadata 'word' is 'abc', not an integer");
  EXPECT_EQ(error_of([&] { (void)metadata_int(m, "neg", "f"); }),
            "f: metadata 'neg' is -3, outside [0, 9223372036854775807]");
  EXPECT_EQ(error_of([&] { (void)metadata_int(m, "missing", "f"); }),
            "f: no 'missing' in the checkpoint's metadata");
  EXPECT_EQ(error_of([&] { (void)metadata_int(m, "empty", "f"); }), "f: metadata 'empty' is empty");
  EXPECT_NE(error_of([&] { (void)metadata_int(m, "tail", "f"); }).find("'7x', not an integer"),
            std::string::npos);
  EXPECT_NE(error_of([&] { (void)metadata_int(m, "big", "f"); }).find("not an integer"),
            std::string::npos);
  EXPECT_NE(
      error_of([&] { (void)metadata_uint(m, "neg", "f"); }).find("'-3', not an unsigned integer"),
      std::string::npos);
  EXPECT_NE(
      error_of([&] { (void)metadata_double(m, "nan", "f"); }).find("'nan', not a finite number"),
      std::string::npos);
  EXPECT_NE(error_of([&] { (void)metadata_double(m, "word", "f"); }).find("not a finite number"),
            std::string::npos);
}

}  // namespace
}  // namespace rlft
