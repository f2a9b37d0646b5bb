#include "server/cluster/cluster_node.hpp"

#include <hiredis/hiredis.h>

#include <openssl/sha.h>

#include <charconv>
#include <map>
#include <random>

#include "protocol/codec.hpp"
#include "protocol/limits.hpp"
#include "server/cluster/cluster_scripts.hpp"
#include "server/job_replies.hpp"
#include "server/log.hpp"
#include "server/result_bytes.hpp"

namespace mrd::server::cluster {

using protocol::Status;

namespace {

constexpr auto code(Status s) {
  return static_cast<std::uint8_t>(s);
}

/// How long a SUBMIT's input pieces stay in Redis if nothing deletes them (a node that died
/// between storing them and recording the job): a safety net, not a limit on queued jobs.
constexpr std::uint64_t kInputTtlMs = 7ull * 24 * 3600 * 1000;
/// Result pieces written (SETs in flight) at once.
constexpr std::size_t kWriteWindow = 8;
constexpr std::string_view kQueues = "mrd:queues";
/// Jobs a node holds per worker: one running, the others ready for it while their inputs come
/// from Redis and their results go back (each is several round trips), so that tiny jobs keep the
/// workers busy: 8 made a node with two workers run 2.4 times as many tiny jobs a second as 4
/// (bench/cluster.py). A dead node's jobs wait out its lease, so this is kept small.
constexpr unsigned kJobsPerWorker = 8;
constexpr std::string_view kGroup = "nodes";
constexpr std::string_view kTasks = "mrd:tasks";
/// Entries of mrd:tasks claimed from stalled nodes at once.
constexpr std::string_view kClaimCount = "16";

std::string job_key(std::uint32_t id) {
  return "mrd:{j" + std::to_string(id) + "}";
}

/// The stream of a tenant's jobs to run.
std::string queue_key(std::string_view tenant) {
  return "mrd:queue:" + std::string(tenant);
}

std::string_view text(const redisReply* reply) {
  if (!reply || (reply->type != REDIS_REPLY_STRING && reply->type != REDIS_REPLY_STATUS)) return {};
  return {reply->str, reply->len};
}

std::uint64_t number(std::string_view digits) {
  std::uint64_t value = 0;
  std::from_chars(digits.data(), digits.data() + digits.size(), value);
  return value;
}

std::uint64_t number(const redisReply* reply) {
  if (reply && reply->type == REDIS_REPLY_INTEGER) {
    return static_cast<std::uint64_t>(reply->integer);
  }
  return number(text(reply));
}

std::string error_frame(Status status, std::string message) {
  std::string frame;
  protocol::append_message(frame, code(status), protocol::ErrorMessage{std::move(message)});
  return frame;
}

std::string missing_frame(bool expired, std::uint32_t id, bool tokens) {
  std::string frame;
  append_missing_job(frame, expired, id, tokens);
  return frame;
}

/// Calls `entries(stream, its entries)` for each stream of an XREADGROUP reply.
template <class Entries>
void for_each_stream(const redisReply* reply, Entries entries) {
  if (reply->type != REDIS_REPLY_ARRAY) return;
  for (std::size_t s = 0; s < reply->elements; ++s) {
    const auto* stream = reply->element[s];
    if (stream->type == REDIS_REPLY_ARRAY && stream->elements == 2) {
      entries(text(stream->element[0]), stream->element[1]);
    }
  }
}

std::string scope_flag(const JobScope& scope) {
  return scope.everyone ? "1" : "0";
}

}  // namespace

ClusterNode::ClusterNode(asio::io_context& io, ClusterConfig config, Workers workers,
                         std::uint32_t max_queued_jobs, RunJob run,
                         std::function<void()> notify_cancelled)
    : io_(io),
      config_(std::move(config)),
      capacity_(std::max(workers.count, 1u) * kJobsPerWorker),
      max_queued_jobs_(max_queued_jobs),
      run_(std::move(run)),
      notify_cancelled_(std::move(notify_cancelled)),
      commands_(io, config_.redis, "commands"),
      tasks_(io, config_.redis, "tasks"),
      events_(io, config_.redis, "events"),
      work_(io, config_.redis, "work"),
      answers_(io, config_.redis, "answers"),
      workers_(std::move(workers)),
      answers_key_("mrd:answers:" + config_.node_name),
      task_prefix_(config_.node_name + "/" + std::to_string(std::random_device{}()) +
                   std::to_string(std::random_device{}()) + "/"),
      renew_timer_(io),
      claim_timer_(io),
      retry_timer_(io) {
  workers_.count = std::max(workers_.count, 1u);
  // Until the cluster's workers are counted: this node's own.
  workers_.pool->set_window(workers_.count);
}

ClusterNode::~ClusterNode() {
  stop();
}

void ClusterNode::start() {
  tasks_.on_ready([this] {
    linked(kTasksLink);
    // Its id, by which another link can end its wait when a tenant's first job arrives.
    tasks_.command({"CLIENT", "ID"}, [this](const redisReply* r) {
      if (r && r->type == REDIS_REPLY_INTEGER) tasks_client_id_ = std::to_string(r->integer);
      ready_to_take();
    });
  });
  events_.on_ready([this] {
    linked(kEventsLink);
    events_.subscribe("mrd:cancels", [this](std::string_view message) {
      // "q": a tenant's queue is new; "t KEY": a task given up by its job's node; else the id
      // of a cancelled job.
      if (message == "q") return read_new_queue();
      if (message.starts_with("t ")) {
        message.remove_prefix(2);
        for (const auto& [id, held] : held_) {
          if (held.key != message) continue;
          log(Level::kInfo, "cluster: task ", held.key, " stopped here: its job gave it up");
          return stop_held(id);
        }
        return;
      }
      drop(static_cast<std::uint32_t>(number(message)), "cancelled");
    });
  });
  work_.on_ready([this] {
    linked(kWorkLink);
    work_.command({"XGROUP", "CREATE", kTasks, kGroup, "0", "MKSTREAM"}, [this](const redisReply*) {
      reading_tasks_ = false;
      maybe_take_tasks();
    });
  });
  answers_.on_ready([this] {
    linked(kAnswersLink);
    collecting_ = false;
    // A pop whose reply was lost with the link took answers off the list: ask each task.
    for (const auto& [key, task] : offered_by_key_) {
      commands_.command({"HEXISTS", key, "answered"}, [this, key](const redisReply* r) {
        if (r && r->type == REDIS_REPLY_INTEGER && r->integer == 1) collect(key);
      });
    }
    collect_answers();
  });
  commands_.on_ready([this] {
    linked(kCommandsLink);
    maybe_take();
    maybe_take_tasks();
    collect_answers();
    offer_waiting();
    count_workers();
  });
  commands_.start();
  tasks_.start();
  events_.start();
  work_.start();
  answers_.start();
  const std::chrono::milliseconds lease(config_.lease_ms);
  every(renew_timer_, lease / 4, &ClusterNode::renew);
  every(claim_timer_, lease / 2, &ClusterNode::claim_stalled);
  log(Level::kInfo, "cluster node ", config_.node_name, " sharing jobs through Redis at ",
      config_.redis.to_string(), " (lease ", config_.lease_ms, " ms)");
}

void ClusterNode::linked(unsigned link) {
  if (links_up_ == kAllLinks) return;  // a reconnect: each link says so itself
  links_up_ |= link;
  if (links_up_ == kAllLinks) {
    // Until now a request may have been answered "unavailable"; scripts wait for this line.
    log(Level::kInfo, "cluster node ", config_.node_name, " connected to Redis: serving");
  }
}

void ClusterNode::stop() {
  if (stopped_) return;
  stopped_ = true;
  renew_timer_.cancel();
  claim_timer_.cancel();
  retry_timer_.cancel();
  events_.stop();
  answers_.stop();
  work_.stop();
  tasks_.stop();
  commands_.stop();
}

void ClusterNode::after(std::chrono::milliseconds delay, std::function<void()> then) {
  auto timer = std::make_shared<asio::steady_timer>(io_, delay);
  timer->async_wait([this, timer, then = std::move(then)](const asio::error_code& error) {
    if (!error && !stopped_) then();
  });
}

void ClusterNode::every(asio::steady_timer& timer, std::chrono::milliseconds period,
                        void (ClusterNode::*tick)()) {
  timer.expires_after(period);
  timer.async_wait([this, &timer, period, tick](const asio::error_code& error) {
    if (error || stopped_) return;
    (this->*tick)();
    every(timer, period, tick);
  });
}

std::string ClusterNode::unavailable(std::string_view what) const {
  return error_frame(Status::kUnavailable,
                     std::string(what) + ": this node cannot reach the cluster's Redis at " +
                         config_.redis.to_string() + " (" + commands_.last_error() +
                         "); nothing was done; try again, or another node");
}

namespace {

/// A script as Redis runs it (the prelude, then the script) and its SHA-1 in hex, by which
/// EVALSHA names it.
struct LoadedScript {
  std::string body;
  std::string sha1;
};

const LoadedScript& loaded(std::string_view script) {
  // The scripts are constants: one entry each, made on first use (on the network thread only).
  static std::map<const char*, LoadedScript> scripts;
  auto [it, made] = scripts.try_emplace(script.data());
  if (made) {
    it->second.body = std::string(kScriptPrelude) + std::string(script);
    unsigned char digest[SHA_DIGEST_LENGTH];
    SHA1(reinterpret_cast<const unsigned char*>(it->second.body.data()), it->second.body.size(),
         digest);
    static constexpr char kHex[] = "0123456789abcdef";
    for (const auto byte : digest) {
      it->second.sha1 += kHex[byte >> 4];
      it->second.sha1 += kHex[byte & 15];
    }
  }
  return it->second;
}

}  // namespace

void ClusterNode::eval(std::string_view script, std::vector<std::string> keys,
                       std::vector<std::string> args, RedisLink::OnReply on_reply) {
  // EVALSHA names a script Redis already holds, so its text is not sent with every call; a Redis
  // that does not hold it (it restarted, or never ran it) says NOSCRIPT, and EVAL sends it once.
  const auto& loaded_script = loaded(script);
  auto arguments = std::make_shared<std::vector<std::string>>();
  arguments->reserve(2 + keys.size() + args.size());
  arguments->push_back(std::to_string(keys.size()));
  for (auto& k : keys)
    arguments->push_back(std::move(k));
  for (auto& a : args)
    arguments->push_back(std::move(a));
  const auto send = [this, arguments](std::string_view command, std::string_view script_or_sha,
                                      RedisLink::OnReply done) {
    std::vector<std::string_view> words{command, script_or_sha};
    words.insert(words.end(), arguments->begin(), arguments->end());
    commands_.command(words, std::move(done));
  };
  send("EVALSHA", loaded_script.sha1,
       [send, &loaded_script, on_reply = std::move(on_reply)](const redisReply* r) {
         if (r && r->type == REDIS_REPLY_ERROR &&
             std::string_view(r->str, r->len).starts_with("NOSCRIPT")) {
           return send("EVAL", loaded_script.body, on_reply);
         }
         on_reply(r);
       });
}

// ---- Requests -------------------------------------------------------------------------------

void ClusterNode::submit(Submission submission, Reply reply) {
  if (!commands_.ready()) return reply(unavailable("submit"));
  auto job = std::make_shared<Submission>(std::move(submission));
  commands_.command({"INCR", "mrd:next-id"}, [this, job, reply](const redisReply* r) {
    if (!r || r->type != REDIS_REPLY_INTEGER) return reply(unavailable("submit"));
    const auto id = static_cast<std::uint32_t>(r->integer);
    const auto key = job_key(id);
    const auto pieces = (job->body.size() + kPieceBytes - 1) / kPieceBytes;
    store_pieces(
        key + ":in:", job, job->body, kInputTtlMs,
        [this, job, id, key, pieces, reply](bool stored) {
          if (!stored) return reply(unavailable("submit"));  // the pieces stored expire
          const auto& t = job->tenant;
          const auto key_name = "mrd:key:" + std::to_string(t.size()) + ":" + t + ":" + job->key;
          eval(kCreateScript, {key, "mrd:jobs", queue_key(t), key_name, std::string(kQueues)},
               {std::to_string(id), t, job->facts.mapper, job->facts.reducer,
                std::to_string(job->body.size()), std::to_string(unix_ms_now()),
                std::to_string(pieces), job->has_key ? "1" : "0",
                std::string(reinterpret_cast<const char*>(job->digest.data()), job->digest.size()),
                std::to_string(max_queued_jobs_)},
               [this, job, id, key, pieces, reply](const redisReply* r) {
                 if (!r || r->type != REDIS_REPLY_ARRAY || r->elements < 2) {
                   return reply(
                       r ? error_frame(Status::kServerError,
                                       "submit: Redis refused the job: " + RedisLink::describe(r))
                         : unavailable("submit"));
                 }
                 std::string frame;
                 const auto outcome = number(r->element[0]);
                 if (outcome == 1) {
                   if (r->elements > 2 && number(r->element[2]) == 1) {
                     // Nodes waiting on the queues they knew read this one too from now on.
                     commands_.command({"PUBLISH", "mrd:cancels", "q"}, [](const redisReply*) {});
                   }
                   protocol::append_message(frame, code(Status::kOk), protocol::JobId{id});
                   return reply(std::move(frame));
                 }
                 // Refused, or the key names a job already: the pieces stored are not needed,
                 // and are gone before the client hears.
                 std::vector<std::string> names;
                 for (std::size_t k = 0; k < pieces; ++k)
                   names.push_back(key + ":in:" + std::to_string(k));
                 std::vector<std::string_view> del{"DEL"};
                 del.insert(del.end(), names.begin(), names.end());
                 const auto count = static_cast<std::uint32_t>(number(r->element[1]));
                 const auto digest =
                     std::string(r->elements > 2 ? text(r->element[2]) : std::string_view{});
                 commands_.command(del, [job, outcome, count, digest, reply](const redisReply*) {
                   if (outcome == 2) {
                     return reply(error_frame(
                         Status::kQueueFull, "queue full: " + std::to_string(count) +
                                                 " jobs are waiting or running in the cluster (mrd "
                                                 "--max-queued-jobs); try again later"));
                   }
                   if (digest != std::string_view(reinterpret_cast<const char*>(job->digest.data()),
                                                  job->digest.size())) {
                     return reply(error_frame(Status::kBadRequest, kKeyUsedForAnotherRequest));
                   }
                   std::string frame;
                   protocol::append_message(frame, code(Status::kOk), protocol::JobId{count});
                   reply(std::move(frame));
                 });
               });
        });
  });
}

void ClusterNode::lookup(std::uint32_t id, const JobScope& scope, Want want, bool tokens,
                         Reply reply) {
  const char* what = want == Want::kFetch ? "fetch" : "status";
  if (!commands_.ready()) return reply(unavailable(what));
  const auto key = job_key(id);
  eval(
      kLookupScript, {key}, {scope_flag(scope), std::string(scope.tenant), std::to_string(id)},
      [this, id, want, tokens, key, what, reply](const redisReply* r) {
        if (!r || r->type != REDIS_REPLY_ARRAY || r->elements == 0) return reply(unavailable(what));
        const auto found = text(r->element[0]);
        if (found != "found" || r->elements < 17) {
          return reply(missing_frame(found == "expired", id, tokens));
        }
        auto field = [r](int i) { return text(r->element[i]); };
        const auto state = static_cast<protocol::JobState>(number(field(2)));
        const protocol::JobProgress progress{id,
                                             state,
                                             static_cast<std::uint32_t>(number(field(7))),
                                             static_cast<std::uint32_t>(number(field(8))),
                                             static_cast<std::uint32_t>(number(field(9))),
                                             static_cast<std::uint32_t>(number(field(10)))};
        std::string frame;
        if (want == Want::kProgress) {
          protocol::append_message(frame, code(Status::kOk), progress);
          return reply(std::move(frame));
        }
        if (want == Want::kDetails) {
          protocol::JobDetails details{
              progress,
              std::string(field(11)),
              std::string(field(12)),
              std::string(field(1)),
              number(field(13)),
              number(field(14)),
              number(field(15)),
              number(field(16)),
              state == protocol::JobState::kFailed ? std::string(field(4)) : std::string()};
          protocol::append_message(frame, code(Status::kOk), details);
          return reply(std::move(frame));
        }
        switch (state) {
          case protocol::JobState::kDone: {
            const auto prefix = key + ":out:" + std::string(field(5)) + ":";
            // The pieces go straight after the frame's header, whose length is set once known.
            std::string header;
            protocol::append_header(header, code(Status::kOk), 0);
            return load_pieces(
                prefix, number(field(6)), std::move(header),
                [this, id, tokens, reply](std::optional<std::string> frame, bool unreachable) {
                  if (unreachable) return reply(unavailable("fetch"));
                  // Gone between the two reads: evicted or cancelled meanwhile.
                  if (!frame) return reply(missing_frame(true, id, tokens));
                  std::string header;
                  protocol::append_header(
                      header, code(Status::kOk),
                      static_cast<std::uint32_t>(frame->size() - protocol::kHeaderBytes));
                  frame->replace(0, header.size(), header);
                  reply(std::move(*frame));
                });
          }
          case protocol::JobState::kFailed:
            return reply(error_frame(static_cast<Status>(number(field(3))), std::string(field(4))));
          case protocol::JobState::kCancelled:
            return reply(
                error_frame(Status::kJobCancelled, "job " + std::to_string(id) + " was cancelled"));
          default:
            protocol::append_message(frame, code(Status::kPending), progress);
            return reply(std::move(frame));
        }
      });
}

void ClusterNode::cancel(std::uint32_t id, const JobScope& scope, bool tokens, Reply reply) {
  if (!commands_.ready()) return reply(unavailable("cancel"));
  eval(kCancelScript, {job_key(id)},
       {scope_flag(scope), std::string(scope.tenant), std::to_string(unix_ms_now()),
        std::to_string(std::uint64_t{config_.result_ttl_seconds} * 1000), std::to_string(id)},
       [this, id, tokens, reply](const redisReply* r) {
         if (!r || r->type != REDIS_REPLY_INTEGER) return reply(unavailable("cancel"));
         if (r->integer != 1) return reply(missing_frame(r->integer == -1, id, tokens));
         std::string frame;
         protocol::append_frame(frame, code(Status::kOk), {});
         reply(std::move(frame));
       });
}

void ClusterNode::list(const JobScope& scope, bool with_tenants, Reply reply) {
  if (!commands_.ready()) return reply(unavailable("list"));
  eval(kListScript, {"mrd:jobs"}, {scope_flag(scope), std::string(scope.tenant)},
       [this, with_tenants, reply](const redisReply* r) {
         if (!r || r->type != REDIS_REPLY_ARRAY) return reply(unavailable("list"));
         protocol::TenantJobList jobs;
         for (std::size_t i = 0; i + 2 < r->elements; i += 3) {
           jobs.jobs.push_back({static_cast<std::uint32_t>(number(r->element[i])),
                                static_cast<protocol::JobState>(number(r->element[i + 1])),
                                std::string(text(r->element[i + 2]))});
         }
         std::string frame;
         append_job_list(frame, jobs, with_tenants);
         reply(std::move(frame));
       });
}

// ---- Taking and running jobs ----------------------------------------------------------------

void ClusterNode::ready_to_take() {
  reading_ = false;
  maybe_take();
}

void ClusterNode::maybe_take() {
  if (stopped_ || !taking_ || reading_ || !tasks_.ready() || !commands_.ready() ||
      running_.size() + taking_now_ >= capacity_) {
    return;
  }
  reading_ = true;
  // Every tenant's queue, read at once, a few entries from each: tenants take turns.
  commands_.command({"SMEMBERS", kQueues}, [this](const redisReply* r) {
    if (!r || r->type != REDIS_REPLY_ARRAY) {
      reading_ = false;
      return;  // the link is down: its on_ready starts again
    }
    queues_.clear();
    for (std::size_t i = 0; i < r->elements; ++i)
      queues_.emplace_back(text(r->element[i]));
    if (queues_.empty()) {
      // No job was ever submitted: the first one's "q" ends this wait.
      retry_timer_.expires_after(std::chrono::seconds(1));
      // Cancelled by read_new_queue(): read at once.
      retry_timer_.async_wait([this](const asio::error_code&) {
        if (!stopped_) ready_to_take();
      });
      return;
    }
    const auto room = capacity_ - std::min<std::size_t>(capacity_, running_.size() + taking_now_);
    // More tenants than room: `room` of their queues, starting one further at every read, so
    // that no more jobs are taken than there is room for and every tenant has its turn.
    const auto streams = std::min(queues_.size(), std::max<std::size_t>(room, 1));
    const auto each = std::to_string(std::max<std::size_t>(1, room / streams));
    std::vector<std::string_view> read{"XREADGROUP", "GROUP", kGroup, config_.node_name, "COUNT",
                                       each,         "BLOCK", "1000", "STREAMS"};
    const auto first = next_queue_++ % queues_.size();
    for (std::size_t i = 0; i < streams; ++i)
      read.push_back(queues_[(first + i) % queues_.size()]);
    read.insert(read.end(), streams, ">");
    // Blocks (on its own link) until entries come, or a second passes.
    tasks_.command(read, [this](const redisReply* r) {
      reading_ = false;
      if (!r) return;  // the link is down: its on_ready starts again
      if (r->type == REDIS_REPLY_ERROR) {
        // NOGROUP: Redis lost a group (restarted without its data): made again after a pause.
        log(Level::kWarn, "cluster: reading jobs: ", RedisLink::describe(r));
        reading_ = true;
        retry_timer_.expires_after(std::chrono::seconds(1));
        retry_timer_.async_wait([this](const asio::error_code&) {
          if (stopped_) return;
          for (const auto& queue : queues_) {
            commands_.command({"XGROUP", "CREATE", queue, kGroup, "0", "MKSTREAM"},
                              [](const redisReply*) {});
          }
          ready_to_take();
        });
        return;
      }
      for_each_stream(r, [this](std::string_view queue, const redisReply* entries) {
        take_entries(entries, false, std::string(queue));
      });
      maybe_take();
    });
  });
}

void ClusterNode::read_new_queue() {
  if (!reading_) return maybe_take();
  // Waiting on the queues known before: end the wait (a blocked read answers as if it timed out)
  // so that the next one reads the new queue too. Without queues, the timer's wait ends instead.
  retry_timer_.cancel();
  if (!tasks_client_id_.empty()) {
    commands_.command({"CLIENT", "UNBLOCK", tasks_client_id_}, [](const redisReply*) {});
  }
}

void ClusterNode::claim_stalled() {
  if (commands_.ready()) {
    // Tasks first: any node answers a stalled node's tasks, whether it has room or not.
    commands_.command({"XAUTOCLAIM", kTasks, kGroup, config_.node_name,
                       std::to_string(config_.lease_ms), "0-0", "COUNT", kClaimCount},
                      [this](const redisReply* r) {
                        if (r && r->type == REDIS_REPLY_ARRAY && r->elements >= 2) {
                          lose_task_entries(r->element[1]);
                        }
                      });
  }
  if (!taking_ || !commands_.ready() || running_.size() + taking_now_ >= capacity_) return;
  const auto room = std::to_string(capacity_ - running_.size() - taking_now_);
  for (const auto& queue : queues_) {
    commands_.command({"XAUTOCLAIM", queue, kGroup, config_.node_name,
                       std::to_string(config_.lease_ms), "0-0", "COUNT", room},
                      [this, queue](const redisReply* r) {
                        if (r && r->type == REDIS_REPLY_ARRAY && r->elements >= 2) {
                          take_entries(r->element[1], true, queue);
                        }
                      });
  }
}

void ClusterNode::take_entries(const redisReply* entries, bool claimed, const std::string& queue) {
  if (entries->type != REDIS_REPLY_ARRAY) return;
  for (std::size_t e = 0; e < entries->elements; ++e) {
    const auto* entry = entries->element[e];
    if (entry->type != REDIS_REPLY_ARRAY || entry->elements != 2) continue;
    const auto* fields = entry->element[1];  // job, its id
    if (fields->type != REDIS_REPLY_ARRAY || fields->elements < 2) continue;
    const auto id = static_cast<std::uint32_t>(number(fields->element[1]));
    if (claimed) {
      log(Level::kWarn, "cluster: job ", id,
          " was held by a node that stopped renewing its lease; running it here");
    }
    take(std::string(text(entry->element[0])), id, queue);
  }
}

void ClusterNode::take(std::string entry, std::uint32_t id, const std::string& queue) {
  if (running_.count(id)) return;  // already ours (a claim of our own entry)
  ++taking_now_;
  const auto key = job_key(id);
  eval(kTakeScript, {key, queue},
       {config_.node_name, entry, std::to_string(unix_ms_now()),
        std::to_string(std::uint64_t{config_.result_ttl_seconds} * 1000),
        std::to_string(kMaxAttempts)},
       [this, id, key](const redisReply* r) {
         if (!r || r->type != REDIS_REPLY_ARRAY || r->elements < 7 || number(r->element[0]) == 0) {
           --taking_now_;
           return maybe_take();
         }
         const auto attempt = std::to_string(number(r->element[0]));
         JobFacts facts{std::string(text(r->element[2])), std::string(text(r->element[3])),
                        number(r->element[4]), number(r->element[5])};
         facts.accepted_at = std::chrono::steady_clock::now();
         auto ticket =
             std::make_shared<JobTicket>(id, std::string(text(r->element[1])), std::move(facts));
         load_pieces(
             key + ":in:", number(r->element[6]), {},
             [this, id, attempt, ticket](std::optional<std::string> body, bool unreachable) {
               --taking_now_;
               if (stopped_) return;
               if (!body) {
                 // Redis went away: the lease runs out and a node (maybe this one) takes
                 // the job again. Its pieces gone: a CANCEL came first, nothing to do.
                 log(unreachable ? Level::kWarn : Level::kDebug, "cluster: job ", id,
                     unreachable ? ": lost Redis while reading its input"
                                 : ": its input is gone (cancelled meanwhile)");
                 return maybe_take();
               }
               running_[id] = {ticket, attempt};
               std::string error;
               if (!run_(ticket, std::move(*body), error)) {
                 finished({id, Status::kJobFailed, std::move(error)});
               }
               maybe_take();
             });
       });
}

void ClusterNode::renew() {
  for (const auto& [id, task] : held_) {
    if (task.attempt.empty()) continue;  // not taken yet
    eval(kRenewTaskScript, {task.key, std::string(kTasks), job_key(task.job)},
         {config_.node_name, task.attempt},
         [this, id = id, attempt = task.attempt](const redisReply* r) {
           if (!r || r->type != REDIS_REPLY_INTEGER || r->integer != 0) return;
           const auto it = held_.find(id);
           if (it == held_.end() || it->second.attempt != attempt) return;
           log(Level::kInfo, "cluster: task ", it->second.key,
               " stopped here: another node answered it, or its job gave it up");
           stop_held(id);
         });
  }
  offer_waiting();
  count_workers();
  for (const auto& [id, job] : running_) {
    const auto progress = job.ticket->progress();
    // The record shows done or failed only once the result is committed.
    const auto state = std::min<int>(static_cast<int>(progress.state), 2);
    eval(kRenewScript, {job_key(id)},
         {config_.node_name, job.attempt, std::to_string(state), std::to_string(progress.map_done),
          std::to_string(progress.map_total), std::to_string(progress.reduce_done),
          std::to_string(progress.reduce_total)},
         [this, id = id, attempt = job.attempt](const redisReply* r) {
           if (!r || r->type != REDIS_REPLY_INTEGER || r->integer != 0) return;
           const auto it = running_.find(id);
           if (it != running_.end() && it->second.attempt == attempt) {
             drop(id, "taken over by another node (this one held it past its lease)");
           }
         });
  }
}

void ClusterNode::drop(std::uint32_t id, const char* why) {
  const auto it = running_.find(id);
  if (it == running_.end()) return;
  log(Level::kInfo, "cluster: job ", id, " stopped here: ", why);
  it->second.ticket->cancelled = true;
  running_.erase(it);
  notify_cancelled_();
  maybe_take();
}

void ClusterNode::finished(JobOutcome outcome) {
  const auto it = running_.find(outcome.id);
  if (it == running_.end() || it->second.finishing) return;  // cancelled or taken over meanwhile
  it->second.finishing = true;
  const auto id = outcome.id;
  const auto attempt = it->second.attempt;
  if (outcome.status != Status::kOk) {
    return commit(id, attempt, outcome.status, std::move(outcome.body), 0);
  }
  auto result =
      std::make_shared<ResultBytes>(outcome.segment ? ResultBytes(std::move(outcome.segment))
                                                    : ResultBytes(std::move(outcome.body)));
  const auto bytes = result->bytes();
  const auto pieces = (bytes.size() + kPieceBytes - 1) / kPieceBytes;
  store_pieces(job_key(id) + ":out:" + attempt + ":", result, bytes,
               std::uint64_t{config_.result_ttl_seconds} * 1000,
               [this, id, attempt, pieces](bool stored) {
                 if (!stored) {
                   // Redis went away: the job runs again once this node's lease runs out.
                   log(Level::kWarn, "cluster: cannot store job ", id, "'s result in Redis");
                   running_.erase(id);
                   return maybe_take();
                 }
                 commit(id, attempt, Status::kOk, {}, pieces);
               });
}

void ClusterNode::commit(std::uint32_t id, std::string attempt, Status status, std::string reason,
                         std::size_t pieces) {
  const auto it = running_.find(id);
  if (it == running_.end()) return;
  const auto progress = it->second.ticket->progress();
  eval(kCommitScript, {job_key(id)},
       {config_.node_name, attempt, std::to_string(code(status)), reason, std::to_string(pieces),
        std::to_string(unix_ms_now()),
        std::to_string(std::uint64_t{config_.result_ttl_seconds} * 1000),
        std::to_string(progress.map_total), std::to_string(progress.map_total),
        std::to_string(progress.reduce_total), std::to_string(progress.reduce_total)},
       [this, id, attempt](const redisReply* r) {
         if (!r) {
           // Not committed: the lease runs out and the job runs again elsewhere.
           log(Level::kWarn, "cluster: lost Redis while committing job ", id);
         } else if (r->type == REDIS_REPLY_INTEGER && r->integer == 0) {
           log(Level::kInfo, "cluster: job ", id, "'s attempt ", attempt,
               " was not committed: another node took it over, or it was cancelled");
         } else if (r->type == REDIS_REPLY_ERROR) {
           log(Level::kError, "cluster: committing job ", id, ": ", RedisLink::describe(r));
         }
         const auto it = running_.find(id);
         if (it != running_.end() && it->second.attempt == attempt) running_.erase(it);
         maybe_take();
       });
}

// ---- Tasks ----------------------------------------------------------------------------------

void ClusterNode::offer(ClusterPool::Offer task) {
  const auto job = running_.find(task.job);
  if (job == running_.end()) return;  // dropped meanwhile: the dispatcher gives its tasks up
  if (!commands_.ready()) return waiting_offers_.push_back(std::move(task));
  const auto key = job_key(task.job) + ":t:" + task_prefix_ + std::to_string(task.task);
  offered_[task.task] = {task.job, key};
  offered_by_key_[key] = task.task;
  auto message = std::make_shared<ClusterPool::Offer>(std::move(task));
  const auto pieces = std::to_string((message->body.size() + kPieceBytes - 1) / kPieceBytes);
  const auto ttl = std::uint64_t{config_.result_ttl_seconds} * 1000;
  const auto retry = [this, message, key] {
    // Redis went away: offered again once it is back, unless given up meanwhile.
    if (offered_by_key_.erase(key) == 0) return;
    offered_.erase(message->task);
    waiting_offers_.push_back(std::move(*message));
  };
  store_pieces(
      key + ":in:", message, message->body, ttl,
      [this, message, key, pieces, ttl, retry, attempt = job->second.attempt](bool stored) {
        if (!stored) return retry();
        eval(kOfferScript, {job_key(message->job), key, std::string(kTasks)},
             {config_.node_name, attempt, std::to_string(message->job),
              std::to_string(static_cast<int>(message->type)), pieces, std::to_string(ttl)},
             [retry](const redisReply* r) {
               if (!r) return retry();
               // 0: the job is no longer this node's; its renewal finds out and drops it.
             });
      });
}

void ClusterNode::offer_waiting() {
  if (!commands_.ready()) return;
  for (auto& task : std::exchange(waiting_offers_, {}))
    offer(std::move(task));
}

void ClusterNode::abandon(std::uint64_t task) {
  std::erase_if(waiting_offers_, [task](const ClusterPool::Offer& o) { return o.task == task; });
  const auto it = offered_.find(task);
  if (it == offered_.end()) return;
  const auto key = it->second.key;
  offered_by_key_.erase(key);
  offered_.erase(it);
  forget_task(key, true);
}

void ClusterNode::forget_task(const std::string& key, bool tell_holder) {
  eval(kForgetTaskScript, {key, std::string(kTasks)}, {},
       [this, key, tell_holder](const redisReply* r) {
         if (tell_holder && !text(r).empty()) {
           commands_.command({"PUBLISH", "mrd:cancels", "t " + key}, [](const redisReply*) {});
         }
       });
}

void ClusterNode::maybe_take_tasks() {
  // This node's workers run the tasks it holds, and its own jobs' tasks started here at once.
  const auto busy = held_.size() + workers_.pool->running_here();
  if (stopped_ || reading_tasks_ || !work_.ready() || !commands_.ready() ||
      busy >= workers_.count) {
    return;
  }
  // Draining, a node runs tasks only for the jobs it still coordinates itself (any node's
  // workers may run those): it stops once it holds neither.
  if (!taking_ && running_.empty()) return;
  reading_tasks_ = true;
  // As many as this node has idle workers: a task waits in the stream, where any node may take
  // it, rather than here.
  const auto room = std::to_string(workers_.count - busy);
  work_.command({"XREADGROUP", "GROUP", kGroup, config_.node_name, "COUNT", room, "BLOCK", "1000",
                 "STREAMS", kTasks, ">"},
                [this](const redisReply* r) {
                  if (!r) return;  // the link is down: its on_ready starts again
                  if (r->type == REDIS_REPLY_ERROR) {
                    // NOGROUP: Redis lost the group; made again after a pause.
                    log(Level::kWarn, "cluster: reading tasks: ", RedisLink::describe(r));
                    after(std::chrono::seconds(1), [this] {
                      work_.command({"XGROUP", "CREATE", kTasks, kGroup, "0", "MKSTREAM"},
                                    [this](const redisReply*) {
                                      reading_tasks_ = false;
                                      maybe_take_tasks();
                                    });
                    });
                    return;
                  }
                  reading_tasks_ = false;
                  for_each_stream(r, [this](std::string_view, const redisReply* entries) {
                    take_task_entries(entries);
                  });
                  maybe_take_tasks();
                });
}

namespace {
/// An entry of mrd:tasks: its id, job and task key; false if it is not one.
bool task_entry(const redisReply* entry, std::string& id, std::uint32_t& job, std::string& key) {
  if (entry->type != REDIS_REPLY_ARRAY || entry->elements != 2) return false;
  const auto* fields = entry->element[1];  // job, its id, task, its key
  if (fields->type != REDIS_REPLY_ARRAY || fields->elements < 4) return false;
  id = std::string(text(entry->element[0]));
  job = static_cast<std::uint32_t>(number(fields->element[1]));
  key = std::string(text(fields->element[3]));
  return true;
}
}  // namespace

void ClusterNode::take_task_entries(const redisReply* entries) {
  if (entries->type != REDIS_REPLY_ARRAY) return;
  for (std::size_t e = 0; e < entries->elements; ++e) {
    std::string entry, key;
    std::uint32_t job = 0;
    if (task_entry(entries->element[e], entry, job, key)) {
      take_task(std::move(entry), job, std::move(key));
    }
  }
}

void ClusterNode::take_task(std::string entry, std::uint32_t job, std::string key) {
  if (held_.size() + workers_.pool->running_here() >= workers_.count) {
    // Read for a worker that one of this node's own tasks took meanwhile: another node, or this
    // one later, takes it from the end of the stream.
    return eval(kPassOnTaskScript, {key, std::string(kTasks)}, {entry, std::to_string(job)},
                [](const redisReply*) {});
  }
  const auto id = ++next_held_;
  // Holds its worker's place while it loads: this node's own tasks leave that worker to it.
  held_[id] = {key, job, {}, true};
  workers_.pool->reserve();
  eval(kTakeTaskScript, {job_key(job), key, std::string(kTasks)},
       {config_.node_name, entry, std::to_string(std::uint64_t{config_.result_ttl_seconds} * 1000)},
       [this, id, key](const redisReply* r) {
         const auto it = held_.find(id);
         if (it == held_.end()) return;
         if (!r || r->type != REDIS_REPLY_ARRAY || r->elements < 3 || number(r->element[0]) == 0) {
           forget_held(id);
           return maybe_take_tasks();
         }
         it->second.attempt = std::to_string(number(r->element[0]));
         const auto type = static_cast<TaskMessageType>(number(r->element[1]));
         load_pieces(key + ":in:", number(r->element[2]), {},
                     [this, id, type](std::optional<std::string> body, bool) {
                       const auto it = held_.find(id);
                       if (it == held_.end()) return;  // stopped meanwhile
                       if (!body) {
                         // Given up meanwhile, or Redis went away (then the lease runs out and
                         // another node answers it lost).
                         forget_held(id);
                         return maybe_take_tasks();
                       }
                       // Counted while it waits and runs, as a task message a single server sends.
                       auto charge = workers_.budget
                                         ? MemoryCharge::force_take(*workers_.budget, body->size())
                                         : MemoryCharge{};
                       it->second.loading = false;
                       workers_.pool->unreserve();
                       workers_.run({id, type, std::move(*body), std::move(charge)});
                     });
       });
}

void ClusterNode::forget_held(std::uint64_t id) {
  const auto it = held_.find(id);
  if (it == held_.end()) return;
  if (it->second.loading) workers_.pool->unreserve();
  held_.erase(it);
}

void ClusterNode::stop_held(std::uint64_t id) {
  if (!held_.count(id)) return;
  forget_held(id);
  workers_.stop(id);
  maybe_take_tasks();
}

void ClusterNode::task_ended(std::uint64_t id, PoolEvent event) {
  const auto it = held_.find(id);
  if (it == held_.end()) return;  // stopped meanwhile
  const auto held = it->second;
  auto ended = std::make_shared<PoolEvent>(std::move(event));
  const char* answered = ended->kind == PoolEvent::Kind::kAnswer ? "answer"
                         : ended->kind == PoolEvent::Kind::kLost ? "lost"
                                                                 : "over";
  const auto& bytes = ended->answer.body;
  const auto pieces = std::to_string((bytes.size() + kPieceBytes - 1) / kPieceBytes);
  const auto ttl = std::to_string(std::uint64_t{config_.result_ttl_seconds} * 1000);
  store_pieces(
      held.key + ":ans:" + held.attempt + ":", ended, bytes,
      std::uint64_t{config_.result_ttl_seconds} * 1000,
      [this, id, held, ended, answered, pieces, ttl](bool stored) {
        if (!stored) {
          // Redis went away: the lease runs out and another node answers it lost.
          forget_held(id);
          return maybe_take_tasks();
        }
        eval(kAnswerTaskScript, {held.key, std::string(kTasks)},
             {config_.node_name, held.attempt, answered,
              std::to_string(static_cast<int>(ended->answer.type)), ended->how, pieces, ttl},
             [this, id, key = held.key](const redisReply* r) {
               if (r && r->type == REDIS_REPLY_INTEGER && r->integer == 0) {
                 log(Level::kInfo, "cluster: the answer of task ", key,
                     " was not kept: another node answered it, or its job gave it up");
               }
               forget_held(id);
               maybe_take_tasks();
             });
      });
}

void ClusterNode::lose_task_entries(const redisReply* entries) {
  if (entries->type != REDIS_REPLY_ARRAY) return;
  for (std::size_t e = 0; e < entries->elements; ++e) {
    std::string entry, key;
    std::uint32_t job = 0;
    if (!task_entry(entries->element[e], entry, job, key)) continue;
    const bool ours = std::any_of(held_.begin(), held_.end(),
                                  [&key](const auto& held) { return held.second.key == key; });
    if (ours) continue;  // ours already, renewed late
    eval(kLoseTaskScript, {key, std::string(kTasks)},
         {entry, std::to_string(std::uint64_t{config_.result_ttl_seconds} * 1000)},
         [job, key](const redisReply* r) {
           if (r && r->type == REDIS_REPLY_INTEGER && r->integer == 1) {
             log(Level::kWarn, "cluster: a task of job ", job,
                 " was held by a node that stopped renewing its lease; its job's node runs it "
                 "again");
           }
         });
  }
}

void ClusterNode::collect_answers() {
  if (stopped_ || collecting_ || !answers_.ready()) return;
  collecting_ = true;
  answers_.command({"BLMPOP", "1", "1", answers_key_, "LEFT", "COUNT", "64"},
                   [this](const redisReply* r) {
                     if (!r) return;  // the link is down: its on_ready starts again
                     collecting_ = false;
                     // {key, {task, ...}}, or nil when a second passed with none.
                     if (r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
                         r->element[1]->type == REDIS_REPLY_ARRAY) {
                       for (std::size_t i = 0; i < r->element[1]->elements; ++i) {
                         const auto entry = text(r->element[1]->element[i]);
                         if (entry.starts_with("s ")) {
                           started(std::string(entry.substr(2)));
                         } else {
                           collect(std::string(entry));
                         }
                       }
                     }
                     collect_answers();
                   });
}

void ClusterNode::started(const std::string& key) {
  const auto it = offered_by_key_.find(key);
  if (it == offered_by_key_.end()) return;
  PoolEvent event;
  event.kind = PoolEvent::Kind::kStarted;
  workers_.pool->report(it->second, std::move(event));
}

void ClusterNode::collect(std::string key) {
  if (!offered_by_key_.count(key)) return forget_task(key, false);  // given up already
  commands_.command(
      {"HMGET", key, "answered", "answer_type", "how", "ans_attempt", "ans_pieces"},
      [this, key](const redisReply* r) {
        const auto it = offered_by_key_.find(key);
        if (it == offered_by_key_.end()) return;
        const auto task = it->second;
        const auto report = [this, key, task](PoolEvent event) {
          if (offered_by_key_.erase(key) == 0) return;  // given up meanwhile
          offered_.erase(task);
          workers_.pool->report(task, std::move(event));
          forget_task(key, false);
        };
        if (!r || r->type != REDIS_REPLY_ARRAY || r->elements < 5) {
          // Redis went away (or failed the read): asked again in a moment.
          return after(std::chrono::milliseconds(500), [this, key] { collect(key); });
        }
        const auto answered = text(r->element[0]);
        if (answered != "answer") {
          PoolEvent event;
          event.kind = answered == "over" ? PoolEvent::Kind::kOverBudget : PoolEvent::Kind::kLost;
          event.how = answered.empty() ? std::string("was lost with its record in Redis")
                                       : std::string(text(r->element[2]));
          return report(std::move(event));
        }
        const auto type = static_cast<TaskMessageType>(number(r->element[1]));
        load_pieces(key + ":ans:" + std::string(text(r->element[3])) + ":", number(r->element[4]),
                    {}, [this, report, type](std::optional<std::string> bytes, bool) {
                      PoolEvent event;
                      if (bytes) {
                        // Held by the job (a map's output, until its reduces): counted as a
                        // worker's answer is on a single server.
                        if (workers_.budget) {
                          event.charge = MemoryCharge::force_take(*workers_.budget, bytes->size());
                        }
                        event.answer.type = type;
                        event.answer.body = std::move(*bytes);
                      } else {
                        event.kind = PoolEvent::Kind::kLost;
                        event.how = "its answer was lost in Redis";
                      }
                      report(std::move(event));
                    });
      });
}

void ClusterNode::count_workers() {
  if (!commands_.ready()) return;
  // A node is counted until it has been silent for two leases.
  eval(kNodesScript, {"mrd:nodes", "mrd:node-workers"},
       {config_.node_name, std::to_string(workers_.count), std::to_string(unix_ms_now()),
        std::to_string(2 * std::uint64_t{config_.lease_ms})},
       [this](const redisReply* r) {
         if (!r || r->type != REDIS_REPLY_INTEGER) return;
         // A task for each worker here, and for each worker of the other nodes one running and
         // the next waiting in the stream. A node alone offers nothing while its own workers are
         // busy: only it would take the offer, later than it starts the task itself.
         const auto all = static_cast<unsigned>(
             std::clamp<long long>(r->integer, workers_.count, ClusterPool::kSlots));
         workers_.pool->set_window(workers_.count + 2 * (all - workers_.count));
       });
}

// ---- Values in pieces -----------------------------------------------------------------------

struct ClusterNode::PieceWrite {
  std::string prefix;
  std::shared_ptr<const void> owner;  ///< keeps `bytes` alive
  std::string_view bytes;
  std::string ttl;
  std::size_t count = 0, next = 0, in_flight = 0;
  bool failed = false;
  std::function<void(bool)> done;
};

void ClusterNode::store_pieces(std::string prefix, std::shared_ptr<const void> owner,
                               std::string_view bytes, std::uint64_t ttl_ms,
                               std::function<void(bool)> done) {
  const auto count = (bytes.size() + kPieceBytes - 1) / kPieceBytes;
  if (count == 0) return done(true);
  pump(std::make_shared<PieceWrite>(PieceWrite{std::move(prefix), std::move(owner), bytes,
                                               std::to_string(ttl_ms), count, 0, 0, false,
                                               std::move(done)}));
}

void ClusterNode::pump(std::shared_ptr<PieceWrite> write) {
  // A few SETs in flight, not all: hiredis keeps what it has not written in one buffer.
  while (!write->failed && write->in_flight < kWriteWindow && write->next < write->count) {
    const auto k = write->next++;
    ++write->in_flight;
    commands_.command(
        {"SET", write->prefix + std::to_string(k),
         write->bytes.substr(k * kPieceBytes, kPieceBytes), "PX", write->ttl},
        [this, write](const redisReply* r) {
          --write->in_flight;
          if (!r || r->type == REDIS_REPLY_ERROR) write->failed = true;
          if (write->in_flight == 0 && (write->failed || write->next == write->count)) {
            if (auto done = std::exchange(write->done, nullptr)) done(!write->failed);
            return;
          }
          // A reply that came synchronously (the link is down) is seen by the loop.
          if (!write->failed) pump(write);
        });
  }
}

void ClusterNode::load_pieces(std::string prefix, std::size_t count, std::string start,
                              Loaded done) {
  struct Read {
    std::string bytes;
    std::size_t left = 0;
    bool missing = false;      ///< a piece is not there (deleted, expired)
    bool unreachable = false;  ///< a GET got no reply: the link went down
    Loaded done;
  };
  auto read = std::make_shared<Read>(Read{std::move(start), count, false, false, std::move(done)});
  if (count == 0) return read->done(std::move(read->bytes), false);
  // Every GET at once: hiredis answers them in order, so each piece is appended where it goes.
  for (std::size_t k = 0; k < count; ++k) {
    commands_.command({"GET", prefix + std::to_string(k)}, [read](const redisReply* r) {
      if (!r) {
        read->unreachable = true;
      } else if (r->type != REDIS_REPLY_STRING) {
        read->missing = true;
      } else if (!read->missing && !read->unreachable) {
        read->bytes.append(r->str, r->len);
      }
      if (--read->left > 0) return;
      if (read->missing || read->unreachable) return read->done(std::nullopt, read->unreachable);
      read->done(std::move(read->bytes), false);
    });
  }
}

}  // namespace mrd::server::cluster
