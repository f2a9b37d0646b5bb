// Merging runs that are each already sorted, as reduce and assemble receive them.
#pragma once

#include <algorithm>
#include <iterator>
#include <utility>
#include <vector>

namespace mrd::engine {

/// Merges `runs`, each sorted by `less`, into one vector sorted by `less`, moving the elements.
/// Merges pairs of runs in rounds, so each element moves about log2(runs.size()) times.
template <class T, class Less>
std::vector<T> merge_sorted_runs(std::vector<std::vector<T>> runs, Less less) {
  if (runs.empty()) return {};
  while (runs.size() > 1) {
    std::vector<std::vector<T>> merged;
    merged.reserve((runs.size() + 1) / 2);
    for (std::size_t i = 0; i + 1 < runs.size(); i += 2) {
      auto& left = runs[i];
      auto& right = runs[i + 1];
      std::vector<T> both;
      both.reserve(left.size() + right.size());
      std::merge(std::make_move_iterator(left.begin()), std::make_move_iterator(left.end()),
                 std::make_move_iterator(right.begin()), std::make_move_iterator(right.end()),
                 std::back_inserter(both), less);
      merged.push_back(std::move(both));
    }
    if (runs.size() % 2 == 1) merged.push_back(std::move(runs.back()));
    runs = std::move(merged);
  }
  return std::move(runs.front());
}

}  // namespace mrd::engine
