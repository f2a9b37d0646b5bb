// The Lua scripts a node runs inside Redis: each changes one job atomically, so that two nodes (or
// a node and a client's CANCEL on another node) never see it half-changed.
//
// The keys of one job share the hash tag {j<ID>} (ready for Redis Cluster, which keeps a tag's
// keys on one shard):
//   mrd:{j<ID>}                    hash: the job's record (fields below)
//   mrd:{j<ID>}:in:<k>             its SUBMIT body, in pieces of kPieceBytes
//   mrd:{j<ID>}:out:<attempt>:<k>  its result (FETCH's body) as the attempt that ran it wrote it
//   mrd:{j<ID>}:t:<node>/<n>       hash: a task the job's node offered (task fields below)
//   mrd:{j<ID>}:t:<node>/<n>:in:<k>             the task's message, in pieces
//   mrd:{j<ID>}:t:<node>/<n>:ans:<attempt>:<k>  its answer, as the attempt that ran it wrote it
// and these keys are the cluster's own:
//   mrd:next-id    the last job id handed out (INCR)
//   mrd:jobs       sorted set of the ids remembered (LIST)
//   mrd:queue:<tenant>  the stream of a tenant's jobs to run, read by the consumer group `nodes`
//   mrd:queues     set: every tenant's stream (nodes read them all at once, a few entries from
//                  each, so that tenants take turns across the cluster)
//   mrd:key:<n>:<tenant>:<key>  the job an idempotency key names (<n>: the tenant's length)
//   mrd:tasks      the stream of tasks to run, read by the consumer group `nodes`
//   mrd:answers:<node>  list: the tasks of jobs that <node> runs whose answer is in
//   mrd:nodes      sorted set: each node by when it last said it was alive
//   mrd:node-workers  hash: each node's workers
//
// Record fields: tenant, state (a protocol::JobState number), mapper, reducer, input_bytes,
// submitted_ms, started_ms, finished_ms, in_pieces, queue and entry (its stream and entry there),
// attempt, node (the
// node running the attempt), status and reason (how it ended), out_attempt, out_pieces, the four
// progress counts, digest and keykey (its idempotency key's digest and key name).
//
// The attempt token: a node that takes a job increments `attempt` and remembers the number; every
// later change it makes (renewal, progress, the result) is refused unless `node` and `attempt` are
// still its own. So a node that stalled past its lease, while another took the job over, finds
// out at its next renewal, and can never commit the result twice.
//
// Tasks: the node running a job (its coordinator) offers each of the job's tasks to the cluster
// as an entry in mrd:tasks, with the task's message stored beside it. A node with an idle worker
// takes it; the take script increments the task's own `attempt` and names the node `holder`: the
// task's attempt token, checked by the script that stores its answer. The answer script pushes
// the task's key onto the coordinator's list mrd:answers:<node>, which the coordinator pops. A
// task whose holder stops renewing its entry is claimed by another node, which answers it "lost":
// the coordinator's dispatcher then runs it again, counting an attempt, exactly as it does when
// one of its own workers dies. Task fields: coord and job_attempt (whose offer it is), type (a
// TaskMessageType number), in_pieces, entry, attempt, holder, and once answered: answered
// ("answer", "lost" or "over"), answer_type, how, ans_attempt, ans_pieces.
#pragma once

#include <string_view>

namespace mrd::server::cluster {

/// Longest value the cluster writes: inputs and results are cut into pieces of this size.
inline constexpr std::size_t kPieceBytes = 1 << 20;

/// Runs of a job (takes by a node) before it fails as crashed: as a task's attempts on one node.
inline constexpr int kMaxAttempts = 3;

/// Helpers every script starts with.
inline constexpr std::string_view kScriptPrelude = R"lua(
local function del_pieces(job, kind, count)
  for k = 0, (tonumber(count) or 0) - 1 do redis.call('DEL', job .. ':' .. kind .. ':' .. k) end
end
local function expire_job(job, ttl)
  redis.call('PEXPIRE', job, ttl)
  local keykey = redis.call('HGET', job, 'keykey')
  if keykey and keykey ~= '' then redis.call('PEXPIRE', keykey, ttl) end
end
-- Puts a task's key (or "s " and its key: it started) on the list of answers of the node that
-- offered it.
local function tell_node(node, message, ttl)
  local answers = 'mrd:answers:' .. node
  redis.call('RPUSH', answers, message)
  redis.call('PEXPIRE', answers, ttl)
end
local function release_entry(queue, entry)
  if queue and entry then
    redis.call('XACK', queue, 'nodes', entry)
    redis.call('XDEL', queue, entry)
  end
end
)lua";

/// A new job, once its input pieces are stored. KEYS: job, mrd:jobs, its tenant's queue, key name
/// (or any key if none), mrd:queues. ARGV: id, tenant, mapper, reducer, input_bytes,
/// submitted_ms, in_pieces, has_key (1/0), digest, max_queued. Returns {1, id, new} for the new
/// job (new: 1 if its tenant's queue is new), {0, id, digest} for the job the idempotency key
/// already names, or {2, unfinished} if max_queued jobs are unfinished in the cluster already
/// (their entries in the queues).
inline constexpr std::string_view kCreateScript = R"lua(
if ARGV[8] == '1' then
  local existing = redis.call('GET', KEYS[4])
  if existing then
    local digest = redis.call('HGET', 'mrd:{j' .. existing .. '}', 'digest')
    if digest then return {0, tonumber(existing), digest} end
  end
end
local unfinished = 0
for _, queue in ipairs(redis.call('SMEMBERS', KEYS[5])) do
  unfinished = unfinished + redis.call('XLEN', queue)
end
if unfinished >= tonumber(ARGV[10]) then return {2, unfinished} end
local new = redis.call('SADD', KEYS[5], KEYS[3])
if new == 1 then pcall(redis.call, 'XGROUP', 'CREATE', KEYS[3], 'nodes', '0', 'MKSTREAM') end
redis.call('HSET', KEYS[1], 'tenant', ARGV[2], 'state', '0', 'mapper', ARGV[3],
  'reducer', ARGV[4], 'input_bytes', ARGV[5], 'submitted_ms', ARGV[6], 'in_pieces', ARGV[7],
  'attempt', '0', 'digest', ARGV[9], 'keykey', ARGV[8] == '1' and KEYS[4] or '')
if ARGV[8] == '1' then redis.call('SET', KEYS[4], ARGV[1]) end
redis.call('ZADD', KEYS[2], tonumber(ARGV[1]), ARGV[1])
local entry = redis.call('XADD', KEYS[3], '*', 'job', ARGV[1])
redis.call('HSET', KEYS[1], 'queue', KEYS[3], 'entry', entry)
return {1, tonumber(ARGV[1]), new}
)lua";

/// A node takes the job of a stream entry it read or claimed. KEYS: job, the stream. ARGV: node,
/// entry, now_ms, ttl_ms, kMaxAttempts. Returns {attempt, tenant, mapper, reducer, input_bytes,
/// submitted_ms, in_pieces} to run it, or {0} if it is not to run (finished, cancelled, forgotten,
/// or out of attempts: then failed here).
inline constexpr std::string_view kTakeScript = R"lua(
local state = redis.call('HGET', KEYS[1], 'state')
if not state or tonumber(state) >= 3 then
  release_entry(KEYS[2], ARGV[2])
  return {0}
end
local attempt = redis.call('HINCRBY', KEYS[1], 'attempt', 1)
if attempt > tonumber(ARGV[5]) then
  del_pieces(KEYS[1], 'in', redis.call('HGET', KEYS[1], 'in_pieces'))
  redis.call('HSET', KEYS[1], 'state', '4', 'status', '14', 'finished_ms', ARGV[3], 'reason',
    'the nodes that ran it stopped before it finished, ' .. (attempt - 1) .. ' times')
  release_entry(KEYS[2], ARGV[2])
  expire_job(KEYS[1], ARGV[4])
  return {0}
end
redis.call('HSET', KEYS[1], 'state', '1', 'node', ARGV[1], 'queue', KEYS[2], 'entry', ARGV[2])
redis.call('HSETNX', KEYS[1], 'started_ms', ARGV[3])
local h = redis.call('HMGET', KEYS[1], 'tenant', 'mapper', 'reducer', 'input_bytes',
  'submitted_ms', 'in_pieces')
return {attempt, h[1], h[2], h[3], h[4], h[5], h[6]}
)lua";

/// A running attempt's renewal: its hold on the stream entry (so that no node claims it) and its
/// progress. KEYS: job. ARGV: node, attempt, state, map_done, map_total, reduce_done,
/// reduce_total. Returns 1, or 0 if the attempt is no longer this node's (stop it).
inline constexpr std::string_view kRenewScript = R"lua(
local h = redis.call('HMGET', KEYS[1], 'node', 'attempt', 'state', 'entry', 'queue')
if h[1] ~= ARGV[1] or h[2] ~= ARGV[2] or not h[3] or tonumber(h[3]) >= 3 then return 0 end
redis.call('XCLAIM', h[5], 'nodes', ARGV[1], 0, h[4], 'JUSTID')
redis.call('HSET', KEYS[1], 'state', ARGV[3], 'map_done', ARGV[4], 'map_total', ARGV[5],
  'reduce_done', ARGV[6], 'reduce_total', ARGV[7])
return 1
)lua";

/// An attempt's outcome, once its result pieces are stored. KEYS: job. ARGV: node,
/// attempt, status (protocol::Status number), reason, out_pieces, now_ms, ttl_ms, map_done,
/// map_total, reduce_done, reduce_total. Returns 1, or 0 if the attempt is no longer this node's
/// (its pieces are then deleted: another attempt's result, or the cancellation, stands).
inline constexpr std::string_view kCommitScript = R"lua(
local h = redis.call('HMGET', KEYS[1], 'node', 'attempt', 'state', 'in_pieces', 'entry', 'queue')
if h[1] ~= ARGV[1] or h[2] ~= ARGV[2] or not h[3] or tonumber(h[3]) >= 3 then
  del_pieces(KEYS[1], 'out:' .. ARGV[2], ARGV[5])
  return 0
end
redis.call('HSET', KEYS[1], 'state', ARGV[3] == '0' and '3' or '4', 'status', ARGV[3],
  'reason', ARGV[4], 'out_attempt', ARGV[2], 'out_pieces', ARGV[5], 'finished_ms', ARGV[6],
  'map_done', ARGV[8], 'map_total', ARGV[9], 'reduce_done', ARGV[10], 'reduce_total', ARGV[11])
del_pieces(KEYS[1], 'in', h[4])
release_entry(h[6], h[5])
expire_job(KEYS[1], ARGV[7])
for k = 0, tonumber(ARGV[5]) - 1 do
  redis.call('PEXPIRE', KEYS[1] .. ':out:' .. ARGV[2] .. ':' .. k, ARGV[7])
end
return 1
)lua";

/// A task offered by the node running its job, once its message is stored. KEYS: job, task,
/// mrd:tasks. ARGV: node, job attempt, id, type, in_pieces, ttl_ms. Returns 1, or 0 if the job is
/// no longer this attempt's (the task's pieces are then deleted).
inline constexpr std::string_view kOfferScript = R"lua(
local h = redis.call('HMGET', KEYS[1], 'node', 'attempt', 'state')
if h[1] ~= ARGV[1] or h[2] ~= ARGV[2] or not h[3] or tonumber(h[3]) >= 3 then
  del_pieces(KEYS[2], 'in', ARGV[5])
  return 0
end
local entry = redis.call('XADD', KEYS[3], '*', 'job', ARGV[3], 'task', KEYS[2])
redis.call('HSET', KEYS[2], 'coord', ARGV[1], 'job_attempt', ARGV[2], 'type', ARGV[4],
  'in_pieces', ARGV[5], 'entry', entry, 'attempt', '0')
redis.call('PEXPIRE', KEYS[2], ARGV[6])
return 1
)lua";

/// A node takes a task it read from mrd:tasks. KEYS: job, task, mrd:tasks. ARGV: node, entry,
/// ttl_ms. Returns {attempt, type, in_pieces}, or {0} if it is not to run (answered, given up, or
/// its job's attempt is over: the node that offered it is then told, so that its place is free).
/// The node that offered it hears that it started ("s " and its key on its list of answers): its
/// deadline runs from then, not from the offer.
inline constexpr std::string_view kTakeTaskScript = R"lua(
local t = redis.call('HMGET', KEYS[2], 'coord', 'job_attempt', 'type', 'in_pieces', 'answered')
local h = redis.call('HMGET', KEYS[1], 'node', 'attempt', 'state')
if not t[1] or t[5] or h[1] ~= t[1] or h[2] ~= t[2] or not h[3] or tonumber(h[3]) >= 3 then
  release_entry(KEYS[3], ARGV[2])
  if t[1] and not t[5] then
    del_pieces(KEYS[2], 'in', t[4])
    redis.call('HSET', KEYS[2], 'answered', 'lost', 'how', 'was not run: its job had ended',
      'ans_pieces', '0')
    tell_node(t[1], KEYS[2], ARGV[3])
  end
  return {0}
end
local attempt = redis.call('HINCRBY', KEYS[2], 'attempt', 1)
redis.call('HSET', KEYS[2], 'holder', ARGV[1])
tell_node(t[1], 's ' .. KEYS[2], ARGV[3])
return {attempt, t[3], t[4]}
)lua";

/// A node that read a task but has no worker free for it after all (its own job's task took the
/// worker meanwhile) passes it on: a new entry at the end of mrd:tasks. KEYS: task, mrd:tasks.
/// ARGV: entry, job id. Returns 1 if passed on, 0 if there was nothing to pass on.
inline constexpr std::string_view kPassOnTaskScript = R"lua(
local t = redis.call('HMGET', KEYS[1], 'entry', 'answered')
release_entry(KEYS[2], ARGV[1])
if not t[1] or t[2] or t[1] ~= ARGV[1] then return 0 end
local entry = redis.call('XADD', KEYS[2], '*', 'job', ARGV[2], 'task', KEYS[1])
redis.call('HSET', KEYS[1], 'entry', entry)
return 1
)lua";

/// A running task's renewal (its entry's idle time). KEYS: task, mrd:tasks, job. ARGV: node,
/// attempt. Returns 1, or 0 if the task is no longer this node's to run, or its job's attempt is
/// over (stop it).
inline constexpr std::string_view kRenewTaskScript = R"lua(
local t = redis.call('HMGET', KEYS[1], 'holder', 'attempt', 'entry', 'answered', 'coord',
  'job_attempt')
if t[1] ~= ARGV[1] or t[2] ~= ARGV[2] or t[4] then return 0 end
local h = redis.call('HMGET', KEYS[3], 'node', 'attempt', 'state')
if h[1] ~= t[5] or h[2] ~= t[6] or not h[3] or tonumber(h[3]) >= 3 then return 0 end
redis.call('XCLAIM', KEYS[2], 'nodes', ARGV[1], 0, t[3], 'JUSTID')
return 1
)lua";

/// A task's answer, once its pieces are stored. KEYS: task, mrd:tasks. ARGV: node, attempt,
/// answered, answer_type, how, ans_pieces, ttl_ms. Returns 1, or 0 if the attempt is no longer
/// this node's (its pieces are then deleted).
inline constexpr std::string_view kAnswerTaskScript = R"lua(
local t = redis.call('HMGET', KEYS[1], 'holder', 'attempt', 'coord', 'entry', 'answered')
if t[1] ~= ARGV[1] or t[2] ~= ARGV[2] or t[5] then
  del_pieces(KEYS[1], 'ans:' .. ARGV[2], ARGV[6])
  return 0
end
redis.call('HSET', KEYS[1], 'answered', ARGV[3], 'answer_type', ARGV[4], 'how', ARGV[5],
  'ans_attempt', ARGV[2], 'ans_pieces', ARGV[6])
release_entry(KEYS[2], t[4])
tell_node(t[3], KEYS[1], ARGV[7])
return 1
)lua";

/// A task whose holder stopped renewing it, claimed by another node: answered "lost", so that its
/// job's node runs it again (as a new attempt). KEYS: task, mrd:tasks. ARGV: entry, ttl_ms.
/// Returns 1 if answered so, 0 if there was nothing to do.
inline constexpr std::string_view kLoseTaskScript = R"lua(
local t = redis.call('HMGET', KEYS[1], 'coord', 'entry', 'answered', 'holder')
if not t[1] or t[3] or t[2] ~= ARGV[1] then
  release_entry(KEYS[2], ARGV[1])
  return 0
end
redis.call('HINCRBY', KEYS[1], 'attempt', 1)
redis.call('HSET', KEYS[1], 'answered', 'lost', 'how', 'was on node ' .. (t[4] or '?') ..
  ', which stopped renewing its lease', 'ans_pieces', '0')
release_entry(KEYS[2], ARGV[1])
tell_node(t[1], KEYS[1], ARGV[2])
return 1
)lua";

/// The job's node gives a task up (past its deadline, its job cancelled), or has read its answer:
/// its entry, pieces and record go. KEYS: task, mrd:tasks. Returns the node that holds it while
/// it runs ('' if none), to be told to stop it.
inline constexpr std::string_view kForgetTaskScript = R"lua(
local t = redis.call('HMGET', KEYS[1], 'entry', 'in_pieces', 'holder', 'ans_attempt',
  'ans_pieces', 'answered')
if not t[1] then return '' end
if not t[6] then release_entry(KEYS[2], t[1]) end
del_pieces(KEYS[1], 'in', t[2])
if t[4] then del_pieces(KEYS[1], 'ans:' .. t[4], t[5]) end
redis.call('DEL', KEYS[1])
if t[6] then return '' end
return t[3] or ''
)lua";

/// A node says it is alive, with its workers. KEYS: mrd:nodes, mrd:node-workers. ARGV: node,
/// workers, now_ms, lost_after_ms. Returns the workers of the nodes alive (forgetting the others).
inline constexpr std::string_view kNodesScript = R"lua(
-- The one queue of nodes from before tenants had queues of their own, if it is still there.
if redis.call('EXISTS', 'mrd:queue') == 1 then redis.call('SADD', 'mrd:queues', 'mrd:queue') end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
local gone = tonumber(ARGV[3]) - tonumber(ARGV[4])
for _, node in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', gone)) do
  redis.call('HDEL', KEYS[2], node)
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', gone)
local workers = 0
for _, n in ipairs(redis.call('HVALS', KEYS[2])) do workers = workers + tonumber(n) end
return workers
)lua";

/// CANCEL. KEYS: job. ARGV: everyone (1/0), tenant, now_ms, ttl_ms, id. Returns 1 if
/// the job was there (in scope); if not, -1 for an id handed out before (expired) and 0 for one
/// never handed out. A running job's node hears of it on mrd:cancels.
inline constexpr std::string_view kCancelScript = R"lua(
local h = redis.call('HMGET', KEYS[1], 'tenant', 'state', 'entry', 'in_pieces', 'out_attempt',
  'out_pieces', 'queue')
if not h[1] or (ARGV[1] ~= '1' and h[1] ~= ARGV[2]) then
  local last = tonumber(redis.call('GET', 'mrd:next-id') or '0')
  if tonumber(ARGV[5]) <= last then return -1 end
  return 0
end
local state = tonumber(h[2])
if state < 3 then
  del_pieces(KEYS[1], 'in', h[4])
  release_entry(h[7], h[3])
  redis.call('PUBLISH', 'mrd:cancels', ARGV[5])
elseif state < 5 and h[5] then
  del_pieces(KEYS[1], 'out:' .. h[5], h[6])
end
if state ~= 5 then
  -- As on a single server, a cancelled job's key is forgotten: the key may start a new job.
  local keykey = redis.call('HGET', KEYS[1], 'keykey')
  if keykey and keykey ~= '' and redis.call('GET', keykey) == ARGV[5] then
    redis.call('DEL', keykey)
  end
  redis.call('HSET', KEYS[1], 'state', '5', 'out_pieces', '0', 'keykey', '')
  if state < 3 then redis.call('HSET', KEYS[1], 'finished_ms', ARGV[3]) end
end
expire_job(KEYS[1], ARGV[4])
return 1
)lua";

/// FETCH and STATUS. KEYS: job. ARGV: everyone (1/0), tenant, id. Returns {'found', tenant,
/// state, status, reason, out_attempt, out_pieces, map_done, map_total, reduce_done,
/// reduce_total, mapper, reducer, input_bytes, submitted_ms, started_ms, finished_ms}, or
/// {'expired'} or {'unknown'} (a job out of scope is one of those, by its id).
inline constexpr std::string_view kLookupScript = R"lua(
local h = redis.call('HMGET', KEYS[1], 'tenant', 'state', 'status', 'reason', 'out_attempt',
  'out_pieces', 'map_done', 'map_total', 'reduce_done', 'reduce_total', 'mapper', 'reducer',
  'input_bytes', 'submitted_ms', 'started_ms', 'finished_ms')
if not h[1] or (ARGV[1] ~= '1' and h[1] ~= ARGV[2]) then
  local last = tonumber(redis.call('GET', 'mrd:next-id') or '0')
  if tonumber(ARGV[3]) <= last then return {'expired'} end
  return {'unknown'}
end
local out = {'found'}
for i = 1, 16 do out[i + 1] = h[i] or '' end
return out
)lua";

/// LIST. KEYS: mrd:jobs. ARGV: everyone (1/0), tenant. Returns id, state, tenant for each job in
/// scope, by id; forgets the ids whose record expired.
inline constexpr std::string_view kListScript = R"lua(
local out = {}
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local h = redis.call('HMGET', 'mrd:{j' .. id .. '}', 'tenant', 'state')
  if not h[1] then
    redis.call('ZREM', KEYS[1], id)
  elseif ARGV[1] == '1' or h[1] == ARGV[2] then
    out[#out + 1] = id
    out[#out + 1] = h[2]
    out[#out + 1] = h[1]
  end
end
return out
)lua";

}  // namespace mrd::server::cluster
