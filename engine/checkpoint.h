// Checkpoints: modules and optimiser state in the safetensors format.
//
// A module's parameters are stored under their dotted names ("actor.0.weight"), so the file
// loads in PyTorch with safetensors.torch.load_file + load_state_dict. A training
// checkpoint also stores the optimiser's state under "optimizer.<name>" (filter those keys
// out before a strict PyTorch load). Saving is atomic; loading validates every name, dtype
// and shape against the module and copies nothing until everything has been checked, so a
// bad file never half-loads a model.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "engine/nn.h"
#include "engine/optim.h"
#include "engine/safetensors.h"

namespace rlft {

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;
using Metadata = std::map<std::string, std::string>;

safetensors::TensorRecord to_record(const std::string& name, const Tensor& t);
// float32/float64/int64/bool files map to those dtypes; others are an error naming the tensor.
Tensor from_record(const safetensors::TensorRecord& r, const std::string& source);

void save_tensors(const std::string& path, const NamedTensors& tensors, const Metadata& metadata = {});
NamedTensors load_tensors(const std::string& path, Metadata* metadata = nullptr);

// Parameters of `module` (+ the optimiser's state when given) into one file.
void save_checkpoint(const std::string& path, const nn::Module& module, const optim::Optimizer* opt = nullptr,
                     const Metadata& metadata = {});
// Restores `module` (and `opt` when given, which the file must then contain). Errors name
// the file and list missing and unexpected tensors, dtype and shape mismatches, and weights
// holding NaN or ±inf (a diverged run's file is refused, not trained or played further).
Metadata load_checkpoint(const std::string& path, nn::Module& module, optim::Optimizer* opt = nullptr);
// The same from tensors already read by load_tensors (`source` names the file in errors), so a
// loader that needed the file's metadata before building `module` reads the file once.
void load_checkpoint_tensors(const NamedTensors& loaded, const std::string& source,
                             nn::Module& module, optim::Optimizer* opt = nullptr);
// The weights a file's tensors hold, optimiser state left out: a loader compares it with the
// parameter count of the model its metadata describes before building that model.
double stored_weight_count(const NamedTensors& tensors);

// A number stored in a checkpoint's metadata (written with std::to_string / json): a missing
// key, text that is not wholly one number, or a value outside [lo, hi] (or not finite) is an
// error naming `source` (the file) and the key, not std::stoll's bare "stoll".
int64_t metadata_int(const Metadata& m, const std::string& key, const std::string& source,
                     int64_t lo = 0, int64_t hi = INT64_MAX);
uint64_t metadata_uint(const Metadata& m, const std::string& key, const std::string& source);
double metadata_double(const Metadata& m, const std::string& key, const std::string& source);

}  // namespace rlft
