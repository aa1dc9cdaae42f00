// Helpers shared by the test binaries.
#pragma once

#include <string>

#include "engine/error.h"

namespace rlft::testing {

// The message of the rlft::Error that fn() throws, or "<no error>".
template <typename Fn>
std::string error_of(Fn&& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "<no error>";
}

}  // namespace rlft::testing
