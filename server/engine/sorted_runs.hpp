// Merging runs that are each already sorted, as reduce and assemble receive them: runs held as
// vectors of values (merge_sorted_runs), or read in place through cursors (merge_cursors).
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

/// Calls emit(head) for every element of the runs read by `cursors`, in `less` order: a k-way
/// merge through a heap of cursors, about log2(cursors.size()) comparisons per element, nothing
/// copied or allocated per element. A cursor has `bool done() const`, `head() const` (the element
/// it is at) and `void advance()`. Elements that compare equal come in no particular run order.
template <class Cursor, class Less, class Emit>
void merge_cursors(std::vector<Cursor> cursors, Less less, Emit emit) {
  std::erase_if(cursors, [](const Cursor& cursor) { return cursor.done(); });
  // A min-heap on the heads: cursors[0] is at the element that comes first.
  const auto later = [&](const Cursor& a, const Cursor& b) { return less(b.head(), a.head()); };
  std::make_heap(cursors.begin(), cursors.end(), later);
  while (!cursors.empty()) {
    emit(cursors.front().head());
    cursors.front().advance();
    if (cursors.front().done()) {
      std::pop_heap(cursors.begin(), cursors.end(), later);
      cursors.pop_back();
      continue;
    }
    // Only the front's head changed: sift it down (pop_heap and push_heap would do it twice).
    const std::size_t size = cursors.size();
    std::size_t at = 0;
    for (;;) {
      std::size_t first = at;
      const std::size_t left = 2 * at + 1, right = left + 1;
      if (left < size && later(cursors[first], cursors[left])) first = left;
      if (right < size && later(cursors[first], cursors[right])) first = right;
      if (first == at) break;
      std::swap(cursors[at], cursors[first]);
      at = first;
    }
  }
}

}  // namespace mrd::engine
