// Test support: submitting jobs and reading their results in raw protocol, with references.
#pragma once

#include <gtest/gtest.h>

#include <cctype>
#include <map>
#include <random>
#include <thread>

#include "server_process.hpp"

namespace mrd::testing {

using protocol::JobState;
using protocol::Opcode;
using protocol::Status;

inline constexpr auto kOk = static_cast<std::uint8_t>(Status::kOk);

inline std::string status_name(std::uint8_t status) {
  return std::string(protocol::to_string(static_cast<Status>(status)));
}

inline std::string error_text(const RawReply& reply) {
  const auto decoded = protocol::decode<protocol::ErrorMessage>(reply.body);
  return decoded ? decoded.value->text : "<undecodable: " + decoded.error + ">";
}

/// Word counts by the rule of the spec, written plainly.
inline std::map<std::string, std::uint64_t> reference_word_count(
    const std::vector<std::string>& texts) {
  std::map<std::string, std::uint64_t> counts;
  for (const auto& text : texts) {
    std::string word;
    for (unsigned char c : text + " ") {
      if (std::isalnum(c) && c < 0x80) {
        word += static_cast<char>(std::tolower(c));
      } else if (c >= 0x80) {
        word += static_cast<char>(c);
      } else if (!word.empty()) {
        ++counts[word];
        word.clear();
      }
    }
  }
  return counts;
}

inline protocol::SubmitRequest word_count_request(const std::vector<std::string>& texts,
                                                  std::uint64_t chunk_bytes = 0) {
  protocol::Documents docs;
  for (std::size_t i = 0; i < texts.size(); ++i) {
    docs.documents.push_back({"doc" + std::to_string(i), texts[i]});
  }
  return {"words", "sum", {chunk_bytes, 0}, docs};
}

inline std::uint32_t submit(RawClient& client, const protocol::SubmitRequest& request) {
  client.send_message(Opcode::kSubmit, request);
  const auto reply = client.read_reply();
  if (!reply) throw std::runtime_error("no reply to SUBMIT");
  if (reply->status != kOk) {
    throw std::runtime_error("SUBMIT answered " + status_name(reply->status) + ": " +
                             error_text(*reply));
  }
  return protocol::decode<protocol::JobId>(reply->body).value->id;
}

/// Polls FETCH until the job is no longer pending; returns the final reply.
inline RawReply wait_for(RawClient& client, std::uint32_t id, std::chrono::seconds limit = 60s) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  for (;;) {
    client.send_message(Opcode::kFetch, protocol::JobId{id});
    auto reply = client.read_reply();
    if (!reply) throw std::runtime_error("no reply to FETCH");
    if (reply->status != static_cast<std::uint8_t>(Status::kPending)) return *reply;
    if (std::chrono::steady_clock::now() > deadline) throw std::runtime_error("job never ended");
    std::this_thread::sleep_for(2ms);
  }
}

/// Polls STATUS until the job has left the queue: its first tasks are then in workers' hands
/// (the scheduler hands them out as it admits the job, before it looks at anything else).
inline void wait_until_running(RawClient& client, std::uint32_t id,
                               std::chrono::seconds limit = 60s) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  for (;;) {
    client.send_message(Opcode::kStatus, protocol::JobId{id});
    const auto reply = client.read_reply();
    if (!reply || reply->status != kOk) throw std::runtime_error("no STATUS of the job");
    if (protocol::decode<protocol::JobProgress>(reply->body).value->state != JobState::kQueued) {
      return;
    }
    if (std::chrono::steady_clock::now() > deadline) throw std::runtime_error("job never started");
    std::this_thread::sleep_for(2ms);
  }
}

/// The server's STATS counters.
inline protocol::ServerStats server_stats(RawClient& client) {
  client.send(std::string("\x05\0\0\0\0", 5));
  const auto reply = client.read_reply();
  if (!reply || reply->status != kOk) throw std::runtime_error("no STATS reply");
  return protocol::decode<protocol::ServerStats>(reply->body).value.value();
}

inline protocol::JobResult result_of(const RawReply& reply) {
  EXPECT_EQ(status_name(reply.status), "ok") << error_text(reply);
  auto decoded = protocol::decode<protocol::JobResult>(reply.body);
  if (!decoded) throw std::runtime_error("result does not decode: " + decoded.error);
  return std::move(*decoded.value);
}

inline std::map<std::string, std::uint64_t> as_map(const protocol::JobResult& result) {
  std::map<std::string, std::uint64_t> counts;
  for (const auto& e : std::get<protocol::Counts>(result).entries)
    counts[e.key] = e.count;
  return counts;
}

inline std::string random_text(std::size_t words, unsigned seed, std::size_t vocabulary = 500) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<std::size_t> pick(0, vocabulary - 1);
  std::string text;
  for (std::size_t i = 0; i < words; ++i) {
    text += "Word" + std::to_string(pick(rng));
    text += (i % 13 == 0) ? ".\n" : " ";
  }
  return text;
}

inline std::string bytes(std::initializer_list<int> values) {
  std::string out;
  for (int v : values)
    out.push_back(static_cast<char>(v));
  return out;
}

}  // namespace mrd::testing
