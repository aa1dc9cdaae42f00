// A small command-line option parser shared by every rlft command.
//
//   cli::Args args("rlft train ppo", "Train PPO on a classic-control environment.");
//   args.add("--lr", &cfg.learning_rate, "Adam learning rate");
//   args.add("--env", &cfg.env_id, "environment id");
//   if (!args.parse(argc, argv, 3)) return 0;   // false after printing --help
//
// Every option takes a value ("--lr 3e-4" or "--lr=3e-4"); booleans also accept a bare
// "--flag" (true) and "--no-flag" (false). Unknown options, missing values and values that
// do not parse (or are out of range for the type) throw rlft::Error naming the option.
// --help prints every option with its doc and its default.
#pragma once

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <limits>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

#include "engine/error.h"
#include "engine/json.h"

namespace rlft::cli {

class Args {
 public:
  Args(std::string usage, std::string description) : usage_(std::move(usage)), description_(std::move(description)) {}

  void add(const std::string& flag, std::string* v, const std::string& doc) {
    add_option(
        flag, doc, *v, false, [v](const std::string& s) { *v = s; },
        [v] { return json::Value(*v); },
        [v](const json::Value& j) {
          if (!j.is_string()) return false;
          *v = j.as_string();
          return true;
        });
  }
  void add(const std::string& flag, double* v, const std::string& doc) {
    add_option(
        flag, doc, fmt(*v), false, [v, flag](const std::string& s) { *v = parse_double(flag, s); },
        [v] { return json::Value(*v); }, [v](const json::Value& j) { return take_number(j, v); });
  }
  void add(const std::string& flag, float* v, const std::string& doc) {
    add_option(
        flag, doc, fmt(*v), false,
        [v, flag](const std::string& s) { *v = float(parse_double(flag, s)); },
        [v] { return json::Value(double(*v)); },
        [v](const json::Value& j) { return take_number(j, v); });
  }
  void add(const std::string& flag, int64_t* v, const std::string& doc) {
    add_option(
        flag, doc, std::to_string(*v), false,
        [v, flag](const std::string& s) { *v = parse_int(flag, s); },
        [v] { return json::Value(*v); }, [v](const json::Value& j) { return take_integer(j, v); });
  }
  void add(const std::string& flag, int* v, const std::string& doc) {
    add_option(
        flag, doc, std::to_string(*v), false,
        [v, flag](const std::string& s) {
          const int64_t x = parse_int(flag, s);
          RLFT_CHECK(x >= INT32_MIN && x <= INT32_MAX, flag, ": ", s, " is out of range");
          *v = int(x);
        },
        [v] { return json::Value(int64_t(*v)); },
        [v](const json::Value& j) { return take_integer(j, v); });
  }
  void add(const std::string& flag, uint64_t* v, const std::string& doc) {
    add_option(
        flag, doc, std::to_string(*v), false,
        [v, flag](const std::string& s) {
          const int64_t x = parse_int(flag, s);
          RLFT_CHECK(x >= 0, flag, ": must be >= 0, got ", s);
          *v = uint64_t(x);
        },
        [v] { return json::Value(int64_t(*v)); },
        [v](const json::Value& j) { return take_integer(j, v); });
  }
  void add(const std::string& flag, bool* v, const std::string& doc) {
    add_option(
        flag, doc, *v ? "true" : "false", true,
        [v, flag](const std::string& s) { *v = parse_bool(flag, s); },
        [v] { return json::Value(*v); },
        [v](const json::Value& j) {
          if (!j.is_bool()) return false;
          *v = j.as_bool();
          return true;
        });
  }
  // Positional arguments (after the command words), with a name for --help.
  void positional(const std::string& name, std::string* v, const std::string& doc) {
    positionals_.push_back({name, doc, v});
  }

  // Parses argv[first..]; returns false when --help was printed. Required positionals
  // that are missing are an error.
  bool parse(int argc, char** argv, int first) {
    size_t pos = 0;
    for (int i = first; i < argc; ++i) {
      std::string a = argv[i];
      if (a == "--help" || a == "-h") {
        print_help();
        return false;
      }
      if (a.rfind("--", 0) != 0) {
        RLFT_CHECK(pos < positionals_.size(), usage_, ": unexpected argument '", a, "'");
        *positionals_[pos++].target = a;
        continue;
      }
      std::string value;
      bool has_value = false;
      const size_t eq = a.find('=');
      if (eq != std::string::npos) {
        value = a.substr(eq + 1);
        a = a.substr(0, eq);
        has_value = true;
      }
      auto it = index_.find(a);
      if (it == index_.end() && a.rfind("--no-", 0) == 0) {
        auto jt = index_.find("--" + a.substr(5));
        if (jt != index_.end() && options_[jt->second].is_bool && !has_value) {
          options_[jt->second].set("false");
          continue;
        }
      }
      RLFT_CHECK(it != index_.end(), usage_, ": unknown option '", a, "' (see --help)");
      Option& o = options_[it->second];
      if (!has_value) {
        if (o.is_bool && (i + 1 >= argc || std::string(argv[i + 1]).rfind("--", 0) == 0)) {
          value = "true";
        } else {
          // "--name --quiet" is a forgotten value, not a run called "--quiet"; a value that
          // merely starts with "--" ("--rl-args '--beta 0'") is taken.
          RLFT_CHECK(i + 1 < argc && !names_option(argv[i + 1]), a, ": missing value (write ", a,
                     "=VALUE for a value that is itself an option)");
          value = argv[++i];
        }
      }
      o.set(value);
      o.given = true;
    }
    RLFT_CHECK(pos >= positionals_.size(), usage_, ": missing argument <", positionals_[pos].name, ">");
    return true;
  }

  // True when `word` is one of this command's options ("--lr", "--lr=3", "--no-quiet") or --help.
  bool names_option(const std::string& word) const {
    if (word == "--help" || word == "-h") return true;
    const std::string flag = word.substr(0, word.find('='));
    if (index_.count(flag)) return true;
    return flag.rfind("--no-", 0) == 0 && index_.count("--" + flag.substr(5)) > 0;
  }

  bool given(const std::string& flag) const {
    auto it = index_.find(flag);
    return it != index_.end() && options_[it->second].given;
  }

  // Every option's current value, keyed by its name without dashes ("--kl-ctl" → "kl_ctl").
  json::Value to_json() const {
    json::Value obj = json::Value::object();
    for (const Option& o : options_) obj.set(o.key, o.get());
    return obj;
  }

  // The key under which a run's config.json records `flag`, where it is not the flag's own
  // name ("--lr" recorded as "learning_rate").
  void record_as(const std::string& flag, const std::string& key) {
    auto it = index_.find(flag);
    RLFT_CHECK(it != index_.end(), "Args: record_as of unknown option ", flag);
    options_[it->second].key = key;
  }

  // Each option not written on the command line, and not in `keep`, takes the value recorded
  // under its key in `recorded` (a run's settings, read from `source`), where there is one; a
  // value of the wrong type is an error naming the file and the setting. For `--resume`: the
  // run goes on with its own settings unless the command line says otherwise.
  // Returns the flags that took a recorded value.
  std::vector<std::string> take_unwritten(const json::Value& recorded, const std::string& source,
                                          const std::vector<std::string>& keep) {
    RLFT_CHECK(recorded.is_object(), source, ": not a run's settings (not a JSON object)");
    std::vector<std::string> taken;
    for (Option& o : options_) {
      if (o.given || std::find(keep.begin(), keep.end(), o.flag) != keep.end()) continue;
      const json::Value* v = recorded.find(o.key);
      if (!v) continue;
      RLFT_CHECK(o.take(*v), source, ": setting '", o.key, "' is ", v->brief(), ", not a value of ",
                 o.flag, " (", o.default_text.empty() ? "text" : "like " + o.default_text, ")");
      taken.push_back(o.flag);
    }
    return taken;
  }

  void print_help() const {
    std::ostringstream os;
    os << "usage: " << usage_;
    for (const auto& p : positionals_) os << " <" << p.name << ">";
    os << " [options]\n\n" << description_ << "\n\noptions:\n";
    for (const auto& p : positionals_) os << "  <" << p.name << ">  " << p.doc << "\n";
    size_t width = 0;
    for (const Option& o : options_) width = std::max(width, o.flag.size());
    for (const Option& o : options_) {
      os << "  " << o.flag << std::string(width - o.flag.size() + 2, ' ') << o.doc << " (default: "
         << (o.default_text.empty() ? "\"\"" : o.default_text) << ")\n";
    }
    os << "  --help" << std::string(width > 6 ? width - 6 + 2 : 2, ' ') << "show this text\n";
    std::fputs(os.str().c_str(), stdout);
  }

  // The value of `--flag X` / `--flag=X` in argv[first..], read before parsing (a preset, which
  // fills the config before the other options override it), or nullopt when not given. So it
  // may be given once only: with two, neither "first wins" nor "last wins" would match what
  // the command line seems to say.
  static std::optional<std::string> peek_once(int argc, char** argv, int first,
                                              const std::string& flag) {
    std::optional<std::string> found;
    for (int i = first; i < argc; ++i) {
      const std::string a = argv[i];
      std::string value;
      if (a == flag && i + 1 < argc)
        value = argv[++i];
      else if (a.rfind(flag + "=", 0) == 0)
        value = a.substr(flag.size() + 1);
      else
        continue;
      RLFT_CHECK(!found, flag, ": given twice ('", *found, "' and '", value,
                 "'); give one preset and override its settings with options");
      found = value;
    }
    return found;
  }

  // A number as a person writes it: decimal, with an optional sign and exponent. strtod and
  // strtoll alone would also take leading whitespace (" 3", while "3 " is refused) and
  // hexadecimal ("0x10" = 16, "0x1p3" = 8), which a command line never means.
  static bool plain_number(const std::string& s) {
    if (s.empty() || std::isspace(static_cast<unsigned char>(s[0]))) return false;
    const size_t i = s[0] == '+' || s[0] == '-' ? 1 : 0;
    return !(s.size() > i + 1 && s[i] == '0' && (s[i + 1] == 'x' || s[i + 1] == 'X'));
  }
  static double parse_double(const std::string& flag, const std::string& s) {
    char* end = nullptr;
    errno = 0;
    const double v = std::strtod(s.c_str(), &end);
    RLFT_CHECK(plain_number(s) && *end == '\0' && errno == 0, flag, ": '", s, "' is not a number");
    return v;
  }
  static int64_t parse_int(const std::string& flag, const std::string& s) {
    RLFT_CHECK(plain_number(s), flag, ": '", s, "' is not an integer");
    char* end = nullptr;
    errno = 0;
    const long long v = std::strtoll(s.c_str(), &end, 10);
    if (*end != '\0') {
      // Accept integral values written as 1e6 or 2.5e5.
      const double d = std::strtod(s.c_str(), &end);
      RLFT_CHECK(*end == '\0' && std::isfinite(d) && d == std::trunc(d), flag, ": '", s,
                 "' is not an integer");
      // Converting a double outside int64's range is undefined: refuse it first.
      RLFT_CHECK(d >= -0x1p63 && d < 0x1p63, flag, ": ", s, " is out of range");
      return int64_t(d);
    }
    RLFT_CHECK(errno == 0, flag, ": ", s, " is out of range");
    return v;
  }
  template <typename T>
  static bool take_number(const json::Value& j, T* v) {
    if (!j.is_number()) return false;
    *v = T(j.as_double());
    return true;
  }
  template <typename T>
  static bool take_integer(const json::Value& j, T* v) {
    if (!j.is_int()) return false;
    const int64_t x = j.as_int();
    if (x < int64_t(std::numeric_limits<T>::min()) ||
        (std::is_signed_v<T> && x > int64_t(std::numeric_limits<T>::max())))
      return false;
    *v = T(x);
    return true;
  }
  static bool parse_bool(const std::string& flag, const std::string& s) {
    if (s == "true" || s == "1" || s == "yes") return true;
    if (s == "false" || s == "0" || s == "no") return false;
    throw Error(str(flag, ": '", s, "' is not a boolean (true/false)"));
  }

 private:
  struct Option {
    std::string flag, key, doc, default_text;
    bool is_bool = false, given = false;
    std::function<void(const std::string&)> set;
    std::function<json::Value()> get;
    std::function<bool(const json::Value&)> take;  // false: the value's type does not fit
  };
  struct Positional {
    std::string name, doc;
    std::string* target;
  };
  template <typename T>
  static std::string fmt(T v) {
    std::ostringstream os;
    os << v;
    return os.str();
  }
  void add_option(const std::string& flag, const std::string& doc, const std::string& def,
                  bool is_bool, std::function<void(const std::string&)> set,
                  std::function<json::Value()> get, std::function<bool(const json::Value&)> take) {
    RLFT_CHECK(flag.rfind("--", 0) == 0 && !index_.count(flag), "Args: bad or duplicate option ", flag);
    std::string key = flag.substr(2);
    for (char& c : key)
      if (c == '-') c = '_';
    index_[flag] = options_.size();
    options_.push_back(
        {flag, key, doc, def, is_bool, false, std::move(set), std::move(get), std::move(take)});
  }
  std::string usage_, description_;
  std::vector<Option> options_;
  std::map<std::string, size_t> index_;
  std::vector<Positional> positionals_;
};

}  // namespace rlft::cli
