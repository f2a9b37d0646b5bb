// Early maps: a big text job's map tasks start while its SUBMIT is still arriving.
//
// A SUBMIT body puts the job's names and options before its input. So when a big one starts
// arriving (submit_upload.hpp) and names a job whose chunks can be cut as text comes in
// (JobKind::text_overlap), the request handler opens an ArrivingInput: the file the body is written
// to, mapped as it will be when whole, and how many of its bytes are in. The scheduler starts the
// job under a placeholder ticket, cuts chunks as soon as their bytes are in (ArrivalCutter: the
// same chunks as when the input is cut whole) and runs their map tasks while the rest arrives.
//
// Nothing else changes for the client: the job id is sent only once the whole SUBMIT has arrived,
// was checked and, with --data-dir, committed. Then the request handler hands the job to the
// scheduler with the same ArrivingInput, and the job goes on with the maps already done. If the
// SUBMIT never completes (disconnect, timeout, full budget) or is refused (bad bytes, full queue),
// its EarlyStart is dropped, which cancels the placeholder: its tasks stop and their outputs go.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

#include "protocol/submit_layout.hpp"
#include "server/engine/input_view.hpp"
#include "server/engine/text_split.hpp"
#include "server/job_ticket.hpp"
#include "server/pool/segment.hpp"

namespace mrd::server {

class Scheduler;

/// Most SUBMITs whose maps start early at once: each maps its whole declared body ahead (address
/// space, not memory) and holds a descriptor; past it, uploads wait for their last byte as before.
inline constexpr int kMaxEarlyStarts = 4;

/// A SUBMIT body still arriving whose job may start: shared by the connection receiving it and the
/// scheduler running its maps.
struct ArrivingInput {
  protocol::SubmitLayout head;     ///< names and options; its input holds only the kind
  std::uint64_t input_offset = 0;  ///< where in the body the document count starts
  std::uint64_t body_bytes = 0;    ///< the whole body, as its frame header declared
  std::uint64_t body_offset = 0;   ///< where the body starts in `mapping`
  std::shared_ptr<const ArrivingMapping> mapping;  ///< the body's file, mapped whole
  /// Body bytes written to the file; stored after they are written (release), so whoever loads
  /// it (acquire) may read that many.
  std::atomic<std::uint64_t> arrived{0};
  /// The job's ticket until it has an id. Cancelled: the SUBMIT will never be a job.
  std::shared_ptr<JobTicket> placeholder = std::make_shared<JobTicket>(0);

  /// The body's bytes, of which only the first `arrived` may be read.
  std::string_view body() const {
    return {mapping->data() + body_offset, static_cast<std::size_t>(body_bytes)};
  }
};

/// The connection's hold on an ArrivingInput. Dropping it, unless the job was accepted, tells the
/// scheduler that the SUBMIT will never be a job.
class EarlyStart {
 public:
  EarlyStart(std::shared_ptr<ArrivingInput> input, Scheduler& scheduler);
  ~EarlyStart();
  EarlyStart(const EarlyStart&) = delete;
  EarlyStart& operator=(const EarlyStart&) = delete;

  /// How many may be opened now (kMaxEarlyStarts at once).
  static bool available() { return live_.load() < kMaxEarlyStarts; }

  /// `bytes` of the body are in the file now; the scheduler is woken every so often to cut them.
  void arrived(std::uint64_t bytes);
  /// The SUBMIT became a job: the input goes with it to the scheduler, which finds by it the maps
  /// already done.
  std::shared_ptr<ArrivingInput> release();

 private:
  std::shared_ptr<ArrivingInput> input_;
  Scheduler& scheduler_;
  std::uint64_t announced_ = 0;  ///< bytes the scheduler was last woken for
  static inline std::atomic<int> live_{0};
};

/// Cuts an arriving text input into the chunks its job's split() would cut from the whole of it,
/// each as soon as its bytes are in. Only the scheduler thread uses it.
class ArrivalCutter {
 public:
  ArrivalCutter(const ArrivingInput& input, std::uint64_t chunk_bytes, engine::Overlap overlap);

  /// Reads on to `arrived` body bytes (all of them once the body is whole), appending the chunks
  /// completed to `out`; when `arrived` is the whole body, appends the last chunk too. False if
  /// those bytes cannot start a valid body: nothing more is cut (the SUBMIT will be refused).
  bool cut(std::uint64_t arrived, std::vector<engine::InputView>& out);
  /// Every chunk is cut.
  bool done() const { return done_; }

 private:
  std::string_view body_;
  protocol::ArrivingDocuments documents_;
  engine::DocumentSplitter splitter_;
  std::vector<protocol::DocumentLayout> known_;  ///< documents whose header arrived
  std::size_t next_ = 0;                         ///< known_[next_] is the next to start
  bool started_ = false;  ///< known_[next_ - 1] was started and may still be arriving
  bool done_ = false;
};

}  // namespace mrd::server
