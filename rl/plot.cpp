// plot: SVG line plots (see plot.h).
#include "rl/plot.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

#include "engine/error.h"
#include "engine/fs.h"

namespace rlft::plot {

namespace {

std::string escape(const std::string& s) {
  std::string o;
  for (char c : s) {
    switch (c) {
      case '<':
        o += "&lt;";
        break;
      case '>':
        o += "&gt;";
        break;
      case '&':
        o += "&amp;";
        break;
      case '"':
        o += "&quot;";
        break;
      default:
        o += c;
    }
  }
  return o;
}

std::string fmt(double v) {
  char buf[32];
  if (v == 0) return "0";
  const double a = std::abs(v);
  if (a >= 1e5 || a < 1e-3)
    std::snprintf(buf, sizeof buf, "%.3g", v);
  else
    std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

const char* kColors[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e",
                         "#9467bd", "#8c564b", "#e377c2", "#17becf"};

bool drawable(double x, double y, bool log_y) {
  return std::isfinite(x) && std::isfinite(y) && std::abs(x) <= kMaxPlotAbs &&
         std::abs(y) <= kMaxPlotAbs && (!log_y || y > 0);
}

// Widens an empty [lo, hi] (one value, or values closer than float arithmetic can divide:
// 1e17 ± 0.5 is no span at all in doubles) to ±max(0.5, a millionth of the magnitude).
void widen(double& lo, double& hi) {
  const double mag = std::max(std::abs(lo), std::abs(hi));
  if (hi - lo > 1e-9 * mag) return;
  const double mid = lo / 2 + hi / 2, half = std::max(0.5, 1e-6 * mag);
  lo = mid - half;
  hi = mid + half;
}

}  // namespace

int64_t count_unplottable(const std::vector<Series>& series, const PlotOptions& o) {
  int64_t n = 0;
  for (const Series& s : series)
    for (size_t i = 0; i < std::min(s.x.size(), s.y.size()); ++i)
      n += !drawable(s.x[i], s.y[i], o.log_y);
  return n;
}

std::vector<double> nice_ticks(double lo, double hi, int target) {
  if (!(hi > lo) || !std::isfinite(hi - lo)) return {lo};
  const double raw = (hi - lo) / std::max(target - 1, 1);
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  double step = mag;
  for (double m : {1.0, 2.0, 5.0, 10.0}) {
    step = m * mag;
    if (step >= raw) break;
  }
  // Index-based, and bounded: v += step would stall where step is below the values' precision.
  std::vector<double> t;
  const double first = std::ceil(lo / step - 1e-9);
  for (int i = 0; i < 4 * target + 8; ++i) {
    const double v = (first + i) * step;
    if (v > hi + step * 1e-9) break;
    t.push_back(std::abs(v) < step * 1e-9 ? 0.0 : v);
  }
  return t;
}

std::string line_plot_svg(const std::string& title, const std::string& x_label,
                          const std::string& y_label, const std::vector<Series>& series,
                          const PlotOptions& o) {
  for (const Series& s : series)
    RLFT_CHECK(s.x.size() == s.y.size(), "plot: series '", s.name, "' has ", s.x.size(),
               " x values but ", s.y.size(), " y values");
  auto ty = [&](double y) { return o.log_y ? std::log10(y) : y; };
  auto usable = [&](double x, double y) { return drawable(x, y, o.log_y); };
  double x0 = std::numeric_limits<double>::infinity(), x1 = -x0, y0 = x0, y1 = -x0;
  for (const Series& s : series)
    for (size_t i = 0; i < s.x.size(); ++i)
      if (usable(s.x[i], s.y[i])) {
        x0 = std::min(x0, s.x[i]);
        x1 = std::max(x1, s.x[i]);
        y0 = std::min(y0, ty(s.y[i]));
        y1 = std::max(y1, ty(s.y[i]));
      }
  const bool empty = !(x1 >= x0);
  if (empty) x0 = 0, x1 = 1, y0 = 0, y1 = 1;
  widen(x0, x1);
  widen(y0, y1);
  const double pad = 0.04 * (y1 - y0);
  y0 -= pad;
  y1 += pad;

  const double W = o.width, H = o.height, left = 78, right = 20, top = 40, bottom = 56;
  const double pw = W - left - right, ph = H - top - bottom;
  auto px = [&](double x) { return left + (x - x0) / (x1 - x0) * pw; };
  auto py = [&](double y) { return top + (1 - (y - y0) / (y1 - y0)) * ph; };
  char buf[256];
  std::string svg;
  std::snprintf(
      buf, sizeof buf,
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
      "font-family=\"sans-serif\" font-size=\"12\">\n",
      o.width, o.height, o.width, o.height);
  svg += buf;
  svg += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  std::snprintf(buf, sizeof buf,
                "<text x=\"%.1f\" y=\"24\" text-anchor=\"middle\" font-size=\"15\">", W / 2);
  svg += buf + escape(title) + "</text>\n";

  // Grid, ticks and tick labels.
  for (double t : nice_ticks(x0, x1)) {
    std::snprintf(buf, sizeof buf,
                  "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#e6e6e6\"/>"
                  "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">",
                  px(t), top, px(t), top + ph, px(t), top + ph + 16);
    svg += buf + fmt(t) + "</text>\n";
  }
  std::vector<double> yt;
  if (o.log_y) {
    for (double e = std::floor(y0); e <= std::ceil(y1); e += 1)
      for (double m : {1.0, 2.0, 5.0})
        if (y1 - y0 < 2.5 || m == 1.0) {
          const double v = e + std::log10(m);
          if (v >= y0 && v <= y1) yt.push_back(v);
        }
  } else {
    yt = nice_ticks(y0, y1);
  }
  for (double t : yt) {
    std::snprintf(buf, sizeof buf,
                  "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#e6e6e6\"/>"
                  "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">",
                  left, py(t), left + pw, py(t), left - 6, py(t) + 4);
    svg += buf + fmt(o.log_y ? std::pow(10.0, t) : t) + "</text>\n";
  }
  std::snprintf(buf, sizeof buf,
                "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" "
                "stroke=\"#333\"/>\n",
                left, top, pw, ph);
  svg += buf;
  std::snprintf(buf, sizeof buf, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">",
                left + pw / 2, H - 14);
  svg += buf + escape(x_label) + "</text>\n";
  std::snprintf(buf, sizeof buf,
                "<text transform=\"translate(18,%.1f) rotate(-90)\" text-anchor=\"middle\">",
                top + ph / 2);
  svg += buf + escape(y_label + (o.log_y ? " (log)" : "")) + "</text>\n";
  if (empty) {
    std::snprintf(
        buf, sizeof buf,
        "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" fill=\"#888\">no data</text>\n",
        left + pw / 2, top + ph / 2);
    svg += buf;
  }

  if (const int64_t left_out = count_unplottable(series, o); left_out > 0) {
    std::snprintf(
        buf, sizeof buf,
        "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\" fill=\"#888\">%lld point%s not drawn "
        "(not finite or beyond ±1e300%s)</text>\n",
        left + pw - 6, top + ph - 8, (long long)left_out, left_out == 1 ? "" : "s",
        o.log_y ? ", or <= 0" : "");
    svg += buf;
  }

  // One polyline per run of usable points; a single isolated point gets a dot.
  for (size_t k = 0; k < series.size(); ++k) {
    const Series& s = series[k];
    const char* color = kColors[k % (sizeof kColors / sizeof kColors[0])];
    std::vector<std::pair<double, double>> run;
    auto flush = [&]() {
      if (run.size() == 1) {
        std::snprintf(buf, sizeof buf, "<circle cx=\"%.2f\" cy=\"%.2f\" r=\"2.5\" fill=\"%s\"/>\n",
                      run[0].first, run[0].second, color);
        svg += buf;
      } else if (run.size() > 1) {
        svg += "<polyline fill=\"none\" stroke-width=\"1.6\" stroke=\"";
        svg += color;
        svg += "\" points=\"";
        for (auto& [a, b] : run) {
          std::snprintf(buf, sizeof buf, "%.2f,%.2f ", a, b);
          svg += buf;
        }
        svg += "\"/>\n";
      }
      run.clear();
    };
    for (size_t i = 0; i < s.x.size(); ++i) {
      if (usable(s.x[i], s.y[i]))
        run.emplace_back(px(s.x[i]), py(ty(s.y[i])));
      else
        flush();
    }
    flush();
    // Legend entry, top right inside the frame.
    const double ly = top + 14 + 16 * double(k), lx = left + pw - 150;
    std::snprintf(
        buf, sizeof buf,
        "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"2.5\"/>"
        "<text x=\"%.1f\" y=\"%.1f\">",
        lx, ly - 4, lx + 22, ly - 4, color, lx + 28, ly);
    svg += buf + escape(s.name) + "</text>\n";
  }
  svg += "</svg>\n";
  return svg;
}

void write_line_plot(const std::string& path, const std::string& title, const std::string& x_label,
                     const std::string& y_label, const std::vector<Series>& series,
                     const PlotOptions& options) {
  fs::atomic_write_file(path, line_plot_svg(title, x_label, y_label, series, options));
}

}  // namespace rlft::plot
