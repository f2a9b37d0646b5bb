-- Wireshark dissector for the protocol of mrd, the MapReduce job server (protocol version 4, and
-- versions 3, 2 and 1: a HELLO's reply is decoded in the layout of the version that HELLO asked
-- for, a LIST's reply with or without each job's tenant, and a STATUS's or STATS's reply with or
-- without the details their options asked for).
--
-- docs/protocol.md is the specification; "section N" below refers to it. Load with
--   wireshark -X lua_script:protocol/wireshark/mrd.lua
-- and see protocol/wireshark/README.md for the port settings.
--
-- How it is organised, top to bottom:
--   1. the numbers on the wire (opcodes, statuses, states, kinds) and the fields we show;
--   2. Reader, a bounds-checked cursor over a body: a body that lies about a length makes
--      Reader raise a "malformed" error, which is caught and shown as an expert info;
--   3. one small function per body layout, named after the document's types;
--   4. pairing: a reply's layout depends on the request it answers (an OK to FETCH is a result,
--      an OK to STATUS a progress, or the job's details if the STATUS asked for them), so each
--      TCP stream keeps a queue of its requests;
--   5. framing and reassembly over TCP, and the entry points (port table, "Decode As", heuristic).

local mrd = Proto("mrd", "mrd MapReduce job protocol")

------------------------------------------------------------------------------------------------
-- 1. Numbers on the wire (sections 1, 4, 5, 6, 8)
------------------------------------------------------------------------------------------------

local HEADER_SIZE = 5          -- u8 code, u32 body_length
local MAX_SMALL_BODY = 64      -- section 2: any request but SUBMIT and AUTH
local MAX_AUTH_BODY = 1024     -- section 2: AUTH (one string: the token)
local MAX_NAME = 64            -- section 2: mapper, reducer, idempotency key
local MAX_DOCUMENT_NAME = 4096 -- section 2
local MAX_MATRIX_SIDE = 1048576
-- Bodies longer than this are not reassembled: the server refuses SUBMITs over 384 MiB by
-- default, and buffering gigabytes in Wireshark for one frame helps nobody.
local MAX_REASSEMBLED_BODY = 1024 * 1024 * 1024

local OP = { SUBMIT = 0, FETCH = 1, STATUS = 2, CANCEL = 3, LIST = 4, STATS = 5, HELLO = 6,
             AUTH = 7 }
local OPCODE_NAMES = { [0] = "SUBMIT", "FETCH", "STATUS", "CANCEL", "LIST", "STATS", "HELLO",
                       "AUTH" }

local ST = { OK = 0, PENDING = 1 }
local STATUS_NAMES = {
  [0] = "OK", "PENDING", "UNKNOWN_JOB", "JOB_FAILED", "JOB_CANCELLED", "JOB_EXPIRED",
  "QUEUE_FULL", "BAD_REQUEST", "UNKNOWN_OPCODE", "FRAME_TOO_LARGE", "VERSION_MISMATCH",
  "BAD_JOB", "SERVER_BUSY", "SHUTTING_DOWN", "JOB_CRASHED", "JOB_TIMED_OUT", "JOB_OUT_OF_MEMORY",
  "SERVER_ERROR", "AUTH_FAILED", "NOT_AUTHENTICATED", "FORBIDDEN",  -- these three: version 2
  "UNAVAILABLE",  -- a cluster node (mrd --redis) that cannot reach Redis
}

-- AUTH's OK (version 2): the token's role. HELLO's reply to a version 2 or later HELLO: a flags
-- byte.
local ROLE_NAMES = { [0] = "user", "admin" }
local HELLO_AUTH_REQUIRED = 0x01

-- LIST's options byte (version 3): bit 0 asks for each job's tenant. An empty LIST body (version
-- 1) and options 0 get the jobs without tenants.
local LIST_WITH_TENANTS = 0x01

-- STATUS's and STATS's options byte (version 4): bit 0 asks for the details (a job's names,
-- sizes and times; the busy workers and the latency histograms). Without the byte, or with 0,
-- the reply is version 1's.
local STATUS_WITH_DETAILS = 0x01
local STATS_WITH_DETAILS = 0x01

-- A histogram's last bucket has no bound: its upper_us is all ones, shown as "+Inf".
local HISTOGRAM_INF = UInt64.max()
-- Times of a job's life (STATUS's details) are shown as dates up to the end of year 9999.
local MAX_DATE_MS = 253402300799999

local STATE_NAMES = { [0] = "queued", "mapping", "reducing", "done", "failed", "cancelled" }
local STATE = { MAPPING = 1, REDUCING = 2 }

local INPUT_KIND_NAMES = { [0] = "documents", "numbers", "matrix pair" }
local RESULT_KIND_NAMES = { [0] = "counts", "postings", "matrix", "statistics" }

-- STATS reply: fourteen u64 counters, in this order (section 6, STATS).
local STATS_COUNTERS = {
  "uptime_ms", "connections_open", "connections_total", "requests_total", "requests_rejected",
  "jobs_submitted", "jobs_done", "jobs_failed", "jobs_cancelled", "jobs_expired",
  "jobs_unfinished", "workers", "worker_restarts", "retained_result_bytes",
}

------------------------------------------------------------------------------------------------
-- Fields. One job id field everywhere, so that `mrd.job_id == 7` finds every frame about job 7.
------------------------------------------------------------------------------------------------

local F = {
  -- header and pairing
  opcode = ProtoField.uint8("mrd.opcode", "Opcode", base.DEC, OPCODE_NAMES),
  status = ProtoField.uint8("mrd.status", "Status", base.DEC, STATUS_NAMES),
  body_length = ProtoField.uint32("mrd.body_length", "Body length", base.DEC),
  request_in = ProtoField.framenum("mrd.request_in", "Request in frame", base.NONE,
                                   frametype.REQUEST),
  request_opcode = ProtoField.uint8("mrd.request_opcode", "Reply to", base.DEC, OPCODE_NAMES),
  reply_in = ProtoField.framenum("mrd.reply_in", "Reply in frame", base.NONE, frametype.RESPONSE),
  body = ProtoField.bytes("mrd.body", "Body (not decoded)"),
  job_id = ProtoField.uint32("mrd.job_id", "Job id", base.DEC),

  -- HELLO, both ways; its flags only in the reply to a version 2 or later HELLO
  hello_version = ProtoField.uint16("mrd.hello.version", "Protocol version", base.DEC),
  hello_software = ProtoField.string("mrd.hello.software", "Software"),
  hello_flags = ProtoField.uint8("mrd.hello.flags", "Flags", base.HEX),
  hello_auth_required = ProtoField.bool("mrd.hello.auth_required", "Auth required", 8,
                                        { "Yes (AUTH before any other request)", "No" },
                                        HELLO_AUTH_REQUIRED),

  -- AUTH (version 2). The token is a secret: only its length is a field, never its bytes.
  auth_token_length = ProtoField.uint64("mrd.auth.token_length", "Token length", base.DEC),
  auth_tenant = ProtoField.string("mrd.auth.tenant", "Tenant"),
  auth_role = ProtoField.uint8("mrd.auth.role", "Role", base.DEC, ROLE_NAMES),

  -- SUBMIT
  mapper = ProtoField.string("mrd.submit.mapper", "Mapper"),
  reducer = ProtoField.string("mrd.submit.reducer", "Reducer"),
  chunk_bytes = ProtoField.uint64("mrd.submit.chunk_bytes", "Chunk bytes", base.DEC),
  partitions = ProtoField.uint32("mrd.submit.partitions", "Partitions", base.DEC),
  task_timeout_ms = ProtoField.uint32("mrd.submit.task_timeout_ms", "Task timeout (ms)", base.DEC),
  memory_limit_mib = ProtoField.uint32("mrd.submit.memory_limit_mib", "Memory limit (MiB)",
                                       base.DEC),
  idempotency_key = ProtoField.string("mrd.submit.idempotency_key", "Idempotency key"),
  input_kind = ProtoField.uint8("mrd.submit.input_kind", "Input kind", base.DEC, INPUT_KIND_NAMES),
  document_count = ProtoField.uint64("mrd.documents.count", "Documents", base.DEC),
  document_name = ProtoField.string("mrd.document.name", "Name"),
  document_text_length = ProtoField.uint64("mrd.document.text_length", "Text length", base.DEC),
  document_text = ProtoField.string("mrd.document.text", "Text"),
  number_count = ProtoField.uint64("mrd.numbers.count", "Numbers", base.DEC),
  number = ProtoField.double("mrd.number", "Number"),

  -- matrices, in SUBMIT and in a matrix result
  matrix_rows = ProtoField.uint64("mrd.matrix.rows", "Rows", base.DEC),
  matrix_cols = ProtoField.uint64("mrd.matrix.cols", "Columns", base.DEC),
  matrix_value_count = ProtoField.uint64("mrd.matrix.value_count", "Values", base.DEC),
  matrix_value = ProtoField.double("mrd.matrix.value", "Value"),

  -- Progress (STATUS's OK, FETCH's PENDING) and LIST
  state = ProtoField.uint8("mrd.state", "State", base.DEC, STATE_NAMES),
  map_done = ProtoField.uint32("mrd.progress.map_done", "Map tasks done", base.DEC),
  map_total = ProtoField.uint32("mrd.progress.map_total", "Map tasks", base.DEC),
  reduce_done = ProtoField.uint32("mrd.progress.reduce_done", "Reduce partitions done", base.DEC),
  reduce_total = ProtoField.uint32("mrd.progress.reduce_total", "Reduce partitions", base.DEC),
  job_count = ProtoField.uint64("mrd.list.count", "Jobs", base.DEC),
  list_options = ProtoField.uint8("mrd.list.options", "Options", base.HEX),
  list_with_tenants = ProtoField.bool("mrd.list.with_tenants", "With tenants", 8,
                                      { "Yes (each job with its tenant)", "No" },
                                      LIST_WITH_TENANTS),
  list_tenant = ProtoField.string("mrd.list.tenant", "Tenant"),

  -- STATUS's options and its reply with details (version 4). (Not mrd.status.*: mrd.status is
  -- a reply's status code.) The times are u64 Unix milliseconds; each also gets a generated
  -- absolute-time field, to filter on dates.
  status_options = ProtoField.uint8("mrd.status_request.options", "Options", base.HEX),
  status_with_details = ProtoField.bool("mrd.status_request.with_details", "With details", 8,
                                        { "Yes (the job's names, sizes and times)", "No" },
                                        STATUS_WITH_DETAILS),
  details_mapper = ProtoField.string("mrd.details.mapper", "Mapper"),
  details_reducer = ProtoField.string("mrd.details.reducer", "Reducer"),
  details_tenant = ProtoField.string("mrd.details.tenant", "Tenant"),
  details_input_bytes = ProtoField.uint64("mrd.details.input_bytes", "Input bytes", base.DEC),
  details_submitted_ms = ProtoField.uint64("mrd.details.submitted_ms", "Submitted (ms)", base.DEC),
  details_submitted = ProtoField.absolute_time("mrd.details.submitted", "Submitted", base.UTC),
  details_started_ms = ProtoField.uint64("mrd.details.started_ms", "Started (ms)", base.DEC),
  details_started = ProtoField.absolute_time("mrd.details.started", "Started", base.UTC),
  details_finished_ms = ProtoField.uint64("mrd.details.finished_ms", "Finished (ms)", base.DEC),
  details_finished = ProtoField.absolute_time("mrd.details.finished", "Finished", base.UTC),
  details_failure = ProtoField.string("mrd.details.failure", "Failure"),

  -- STATS's options and its reply with details (version 4); the counters are mrd.stats.*, below
  stats_options = ProtoField.uint8("mrd.stats.options", "Options", base.HEX),
  stats_with_details = ProtoField.bool("mrd.stats.with_details", "With details", 8,
                                       { "Yes (busy workers, task and job latencies)", "No" },
                                       STATS_WITH_DETAILS),
  stats_workers_busy = ProtoField.uint64("mrd.stats.workers_busy", "workers_busy", base.DEC),
  stats_tasks_done = ProtoField.uint64("mrd.stats.tasks_done", "tasks_done", base.DEC),
  stats_task_us = ProtoField.none("mrd.stats.task_us", "task_us"),
  stats_job_us = ProtoField.none("mrd.stats.job_us", "job_us"),
  histogram_bucket_count = ProtoField.uint64("mrd.histogram.bucket_count", "Buckets", base.DEC),
  histogram_upper_us = ProtoField.uint64("mrd.histogram.bucket.upper_us", "Upper bound (us)",
                                         base.DEC),
  histogram_count = ProtoField.uint64("mrd.histogram.bucket.count", "Count (cumulative)",
                                      base.DEC),
  histogram_sum_us = ProtoField.uint64("mrd.histogram.sum_us", "Sum (us)", base.DEC),

  -- Results (FETCH's OK)
  result_kind = ProtoField.uint8("mrd.result.kind", "Result kind", base.DEC, RESULT_KIND_NAMES),
  counts_count = ProtoField.uint64("mrd.counts.count", "Entries", base.DEC),
  counts_key = ProtoField.string("mrd.counts.key", "Key"),
  counts_occurrences = ProtoField.uint64("mrd.counts.occurrences", "Occurrences", base.DEC),
  postings_count = ProtoField.uint64("mrd.postings.count", "Words", base.DEC),
  postings_word = ProtoField.string("mrd.postings.word", "Word"),
  postings_document_count = ProtoField.uint64("mrd.postings.document_count", "Documents",
                                              base.DEC),
  postings_document = ProtoField.string("mrd.postings.document", "Document"),
  statistics_count = ProtoField.uint64("mrd.statistics.count", "Count", base.DEC),
  statistics_mean = ProtoField.double("mrd.statistics.mean", "Mean"),
  statistics_median = ProtoField.double("mrd.statistics.median", "Median"),
  statistics_mode = ProtoField.double("mrd.statistics.mode", "Mode"),
  statistics_min = ProtoField.double("mrd.statistics.min", "Min"),
  statistics_max = ProtoField.double("mrd.statistics.max", "Max"),

  -- every status but OK and PENDING
  error_message = ProtoField.string("mrd.error.message", "Message"),
}

-- The STATS counters, one field each: mrd.stats.uptime_ms, mrd.stats.connections_open, ...
local STATS_FIELDS = {}
for i, name in ipairs(STATS_COUNTERS) do
  STATS_FIELDS[i] = ProtoField.uint64("mrd.stats." .. name, name, base.DEC)
  F["stats_" .. name] = STATS_FIELDS[i]
end

local field_list = {}
for _, field in pairs(F) do field_list[#field_list + 1] = field end
mrd.fields = field_list

local E = {
  malformed = ProtoExpert.new("mrd.malformed", "Malformed body", expert.group.MALFORMED,
                              expert.severity.ERROR),
  trailing = ProtoExpert.new("mrd.trailing_bytes", "Bytes left over after the last field",
                             expert.group.MALFORMED, expert.severity.ERROR),
  too_large = ProtoExpert.new("mrd.too_large", "Body over the limit; not reassembled",
                              expert.group.PROTOCOL, expert.severity.WARN),
  unknown_code = ProtoExpert.new("mrd.unknown_code", "Undefined opcode, status or value",
                                 expert.group.PROTOCOL, expert.severity.WARN),
  unpaired = ProtoExpert.new("mrd.unpaired", "Reply to a request not in the capture",
                             expert.group.SEQUENCE, expert.severity.WARN),
  error_reply = ProtoExpert.new("mrd.error_reply", "Error reply", expert.group.RESPONSE_CODE,
                                expert.severity.NOTE),
  bad_histogram = ProtoExpert.new("mrd.bad_histogram", "Histogram not as specified",
                                  expert.group.PROTOCOL, expert.severity.WARN),
  bug = ProtoExpert.new("mrd.dissector_bug", "Internal error in the mrd dissector",
                        expert.group.UNDECODED, expert.severity.ERROR),
}
mrd.experts = { E.malformed, E.trailing, E.too_large, E.unknown_code, E.unpaired, E.error_reply,
                E.bad_histogram, E.bug }

------------------------------------------------------------------------------------------------
-- Preferences
------------------------------------------------------------------------------------------------

local DEFAULT_PORT = 1936
mrd.prefs.port = Pref.uint("Server TCP port", DEFAULT_PORT,
  "TCP port of the mrd server: frames sent to it are requests, frames from it are replies. "
  .. "For a server on another port, set it here or use Decode As (tshark -d tcp.port==PORT,mrd).")
mrd.prefs.heuristic = Pref.bool("Find mrd on any port (heuristic)", false,
  "Recognise an mrd connection on any port by its first request. Off by default: the protocol's "
  .. "small header is too easy to mistake for other binary protocols.")
mrd.prefs.max_list_items = Pref.uint("Largest list shown", 1000,
  "Lists (documents, numbers, matrix values, result entries) longer than this show only their "
  .. "first items; the rest are still checked.")
mrd.prefs.text_shown = Pref.uint("Document text shown (bytes)", 256,
  "How much of each document's text the tree shows.")

------------------------------------------------------------------------------------------------
-- 2. Reader: a cursor over one frame that checks every length before it reads
------------------------------------------------------------------------------------------------

-- Errors raised for a body that does not decode carry this metatable, so that the code catching
-- them can tell a malformed body (the capture's fault) from a bug in this file (ours).
-- (Messages and labels format numbers with %s, not %d: a u64 read from a corrupt body may be past
-- 2^63, where Lua 5.2's %d raises an error of its own.)
local Malformed = {}

local function malformed(format, ...)
  error(setmetatable({ message = string.format(format, ...) }, Malformed), 0)
end

local Reader = {}
Reader.__index = Reader

function Reader.new(tvb, pos)
  return setmetatable({ tvb = tvb, pos = pos, size = tvb:len() }, Reader)
end

function Reader:remaining()
  return self.size - self.pos
end

-- The next n bytes as a TvbRange, after checking they are there.
function Reader:take(n, what)
  if n > self:remaining() then
    malformed("%s needs %s bytes, only %s left", what, n, self:remaining())
  end
  local range = self.tvb(self.pos, n)
  self.pos = self.pos + n
  return range
end

-- Every read below adds its field to `tree` and returns the value and the tree item. `tree` may
-- be nil: items past the "largest list shown" preference are read (to find where the next field
-- starts) but not shown.
local function add_le(tree, field, range)
  if tree then return tree:add_le(field, range) end
end

-- u8, u16 or u32
function Reader:uint(tree, field, size, what)
  local range = self:take(size, what)
  return range:le_uint(), add_le(tree, field, range)
end

-- u64, returned as a Lua number: exact up to 2^53, far beyond any length that fits in a frame.
function Reader:u64(tree, field, what)
  local range = self:take(8, what)
  return range:le_uint64():tonumber(), add_le(tree, field, range)
end

function Reader:f64(tree, field, what)
  local range = self:take(8, what)
  return range:le_float(), add_le(tree, field, range)
end

-- A u64 count of items that each take at least min_item_bytes: a count that the rest of the body
-- cannot hold is refused here, before a loop would run billions of times (section 2).
function Reader:count(tree, field, min_item_bytes, what)
  local count, item = self:u64(tree, field, what)
  if count * min_item_bytes > self:remaining() then
    malformed("%s %s does not fit in the %s bytes left", what, count, self:remaining())
  end
  return count, item
end

-- A `string`: u64 length, then the bytes. The tree item spans both, or, given a length_field,
-- the length gets an item of its own. It shows at most shown_bytes of the value. Returns the
-- value (cut to shown_bytes), the full length, and the item.
function Reader:string(tree, field, what, max_bytes, shown_bytes, length_field)
  local start = self.pos
  local length = self:u64(length_field and tree, length_field, what .. " length")
  if max_bytes and length > max_bytes then
    malformed("%s of %s bytes is over the limit of %s", what, length, max_bytes)
  end
  self:take(length, what)
  local shown = math.min(length, shown_bytes or length)
  local value = shown > 0 and self.tvb(start + 8, shown):string(ENC_UTF_8) or ""
  local item
  if tree then
    local range = length_field and self.tvb(start + 8, length) or self.tvb(start, 8 + length)
    item = tree:add(field, range, value)
    if shown < length then
      item:append_text(string.format(" [first %s of %s bytes]", shown, length))
    end
  end
  return value, length, item
end

-- Runs read(subtree) under a new subtree labelled `label`, whose bytes are the ones read consumed.
-- Whatever read returns is added to the label after a colon, and returned.
function Reader:subtree(tree, label, read)
  if not tree then return read(nil) end
  local start = self.pos
  local sub = tree:add(self.tvb(start, 0), label)
  local summary = read(sub)
  sub:set_len(self.pos - start)
  if summary and summary ~= "" then sub:append_text(": " .. summary) end
  return summary
end

-- Reads `count` items with read_item(index, tree), showing the first max_list_items of them.
function Reader:list(tree, count, read_item)
  local limit = mrd.prefs.max_list_items
  local hidden_from = nil
  for i = 1, count do
    if i == limit + 1 then hidden_from = self.pos end
    read_item(i, (i <= limit) and tree or nil)
  end
  if tree and hidden_from then
    tree:add(self.tvb(hidden_from, self.pos - hidden_from),
             string.format("[%s more not shown: see the preference \"Largest list shown\"]",
                           count - limit))
  end
end

-- An `f64list`: u64 count, then the values. Values past the display limit are skipped in one
-- step, since their size is known. label(i), if given, adds text to value i (such as its cell).
function Reader:f64_list(tree, count_field, value_field, what, label)
  local count = self:count(tree, count_field, 8, what)
  local shown = math.min(count, mrd.prefs.max_list_items)
  for i = 1, shown do
    local _, item = self:f64(tree, value_field, what)
    if item and label then item:append_text(label(i)) end
  end
  if count > shown then
    local skipped = self:take((count - shown) * 8, what)
    if tree then
      tree:add(skipped, string.format("[%s more values not shown]", count - shown))
    end
  end
  return count
end

------------------------------------------------------------------------------------------------
-- 3. Bodies, one function per layout. Each reads its fields and returns a short summary for the
--    Info column. `record` describes the frame (see section 4 below); replies use the request.
------------------------------------------------------------------------------------------------

-- "mapping", or "state 9" for a value this version does not define.
local function name_or_number(names, value, noun)
  return names[value] or (noun .. " " .. value)
end

-- Flags a byte that has no meaning in this version (a state, a kind), without giving up on the
-- rest of the body.
local function check_defined(item, names, value, what)
  if item and names[value] == nil then
    item:add_proto_expert_info(E.unknown_code, string.format("undefined %s %s", what, value))
  end
end

local function read_job_id(r, tree)
  return "job " .. r:uint(tree, F.job_id, 4, "job id")
end

-- HELLO: u16 version, string software (empty in a request). Returns the summary and the version.
local function read_hello(r, tree)
  local version = r:uint(tree, F.hello_version, 2, "version")
  local software = r:string(tree, F.hello_software, "software", nil, 256)
  if software == "" then return "v" .. version, version end
  return software .. ", v" .. version, version
end

-- HELLO's OK: version 1's layout, then (in the reply to a version 2 or later HELLO) u8 flags, whose
-- bit 0 says the server requires AUTH. The request tells the layout; without it, the reply's
-- version.
local function read_hello_ok(r, tree, record)
  local summary, version = read_hello(r, tree)
  local asked = record.request and record.request.hello_version
  if (asked or version) < 2 then return summary end
  local range = r:take(1, "flags")
  local flags = range:uint()
  if tree then
    local item = tree:add(F.hello_flags, range)
    item:add(F.hello_auth_required, range)
    if flags >= 2 then  -- bits 1 to 7 are 0 in versions 2 to 4 (Lua 5.2 has no bit operators)
      item:add_proto_expert_info(E.unknown_code, "undefined flag bits set")
    end
  end
  if flags % 2 == HELLO_AUTH_REQUIRED then summary = summary .. ", auth required" end  -- bit 0
  return summary
end

-- AUTH: string token. The token is a secret: the tree shows how long it is and nothing of its
-- bytes, and neither does the Info column.
local function read_auth(r, tree)
  local start = r.pos
  local length = r:u64(nil, nil, "token length")
  r:take(length, "token")
  if tree then
    tree:add(F.auth_token_length, r.tvb(start, 8 + length), UInt64(length))
        :set_text(string.format("Token: %s bytes (not shown)", length))
  end
  return string.format("token of %s bytes", length)
end

-- AUTH's OK: string tenant, u8 role.
local function read_auth_ok(r, tree)
  local tenant = r:string(tree, F.auth_tenant, "tenant", MAX_NAME)
  local role, role_item = r:uint(tree, F.auth_role, 1, "role")
  check_defined(role_item, ROLE_NAMES, role, "role")
  return string.format("tenant %s, %s", tenant, name_or_number(ROLE_NAMES, role, "role"))
end

-- A u32 option where 0 means "the server chooses"; saying so spares the reader a trip to the doc.
local function read_option(r, tree, field, what)
  local value, item = r:uint(tree, field, 4, what)
  if item and value == 0 then item:append_text(" (server default)") end
end

-- Input kind 0: u64 count, then (string name, string text) per document.
local function read_documents(r, tree)
  local count = r:count(tree, F.document_count, 16, "document count")
  r:list(tree, count, function(i, list_tree)
    r:subtree(list_tree, "Document " .. i, function(doc)
      local name = r:string(doc, F.document_name, "document name", MAX_DOCUMENT_NAME)
      local _, length = r:string(doc, F.document_text, "document text", nil, mrd.prefs.text_shown,
                                 F.document_text_length)
      return string.format("%s (%s bytes)", name, length)
    end)
  end)
  return count .. (count == 1 and " document" or " documents")
end

-- Input kind 1: one f64list.
local function read_numbers(r, tree)
  return r:f64_list(tree, F.number_count, F.number, "number count") .. " numbers"
end

-- A matrix: u64 rows, u64 cols, f64list of rows * cols values, row-major.
local function read_matrix(r, tree, label)
  return r:subtree(tree, label, function(sub)
    local rows = r:u64(sub, F.matrix_rows, "rows")
    local cols = r:u64(sub, F.matrix_cols, "cols")
    if rows > MAX_MATRIX_SIDE or cols > MAX_MATRIX_SIDE then
      malformed("a %sx%s matrix is over the limit of %s rows or columns", rows, cols,
                MAX_MATRIX_SIDE)
    end
    local cell = function(i)
      return string.format(" [%s,%s]", math.floor((i - 1) / cols), (i - 1) % cols)
    end
    local count = r:f64_list(sub, F.matrix_value_count, F.matrix_value, "value count", cell)
    if count ~= rows * cols then
      malformed("%s values for a %sx%s matrix", count, rows, cols)
    end
    return rows .. "x" .. cols
  end)
end

-- Input kind 2: matrix A, then matrix B.
local function read_matrix_pair(r, tree)
  local a = read_matrix(r, tree, "Matrix A")
  local b = read_matrix(r, tree, "Matrix B")
  return a .. " x " .. b
end

local INPUT_READERS = { [0] = read_documents, read_numbers, read_matrix_pair }

-- SUBMIT: names, options, idempotency key, then the input of the kind named by input_kind.
local function read_submit(r, tree)
  local mapper = r:string(tree, F.mapper, "mapper", MAX_NAME)
  local reducer = r:string(tree, F.reducer, "reducer", MAX_NAME)
  local chunk_bytes, chunk_item = r:u64(tree, F.chunk_bytes, "chunk_bytes")
  if chunk_item and chunk_bytes == 0 then chunk_item:append_text(" (server default)") end
  read_option(r, tree, F.partitions, "partitions")
  read_option(r, tree, F.task_timeout_ms, "task_timeout_ms")
  read_option(r, tree, F.memory_limit_mib, "memory_limit_mib")
  local key, _, key_item = r:string(tree, F.idempotency_key, "idempotency key", MAX_NAME)
  if key_item and key == "" then key_item:append_text("(none)") end
  local kind = r:uint(tree, F.input_kind, 1, "input kind")
  local read_input = INPUT_READERS[kind]
  if not read_input then malformed("undefined input kind %s", kind) end
  r:subtree(tree, "Input (" .. INPUT_KIND_NAMES[kind] .. ")",
            function(sub) return read_input(r, sub) end)
  return mapper .. "+" .. reducer
end

-- Progress: u32 id, u8 state, u32 map_done, map_total, reduce_done, reduce_total (21 bytes).
-- Returns the job id and "mapping 1/4": the state, and the counts of the phase it is in.
local function read_progress(r, tree)
  local id = r:uint(tree, F.job_id, 4, "job id")
  local state, state_item = r:uint(tree, F.state, 1, "state")
  check_defined(state_item, STATE_NAMES, state, "job state")
  local map_done = r:uint(tree, F.map_done, 4, "map_done")
  local map_total = r:uint(tree, F.map_total, 4, "map_total")
  local reduce_done = r:uint(tree, F.reduce_done, 4, "reduce_done")
  local reduce_total = r:uint(tree, F.reduce_total, 4, "reduce_total")
  local text = name_or_number(STATE_NAMES, state, "state")
  if state == STATE.MAPPING then
    text = string.format("%s %s/%s", text, map_done, map_total)
  elseif state == STATE.REDUCING then
    text = string.format("%s %s/%s", text, reduce_done, reduce_total)
  end
  return id, text
end

local function read_pending(r, tree)
  local _, text = read_progress(r, tree)
  return text
end

-- Whether the request a reply answers asked for details: a STATUS or STATS whose options byte
-- has bit 0 set (their only bit; the server refuses the others).
local function asked_for_details(record)
  local options = record.request and record.request.options
  return options ~= nil and options % 2 == 1
end

-- A time of a job's life: u64 Unix time in milliseconds, shown also as a UTC date (and as the
-- generated date_field). 0 has a meaning of its own, said by zero_text.
local function read_time(r, tree, ms_field, date_field, what, zero_text)
  local ms, item = r:u64(tree, ms_field, what)
  if not item then return ms end
  if ms == 0 then
    item:append_text(" (" .. zero_text .. ")")
  elseif ms <= MAX_DATE_MS then
    local seconds = math.floor(ms / 1000)
    local millis = ms - seconds * 1000
    item:append_text(string.format(" (%s.%03d UTC)", os.date("!%Y-%m-%d %H:%M:%S", seconds),
                                   millis))
    item:add(date_field, r.tvb(r.pos - 8, 8), NSTime.new(seconds, millis * 1000000))
        :set_generated()
  end
  return ms
end

-- STATUS's OK to a STATUS with details (version 4), `Details`: Progress, string mapper, string
-- reducer, string tenant, u64 input_bytes, u64 submitted_ms, started_ms, finished_ms, string
-- failure.
local function read_job_details(r, tree)
  local id, text = read_progress(r, tree)
  local mapper = r:string(tree, F.details_mapper, "mapper", MAX_NAME)
  local reducer = r:string(tree, F.details_reducer, "reducer", MAX_NAME)
  local tenant, _, tenant_item = r:string(tree, F.details_tenant, "tenant", MAX_NAME)
  if tenant_item and tenant == "" then
    tenant_item:append_text("(none: submitted without a token)")
  end
  r:u64(tree, F.details_input_bytes, "input_bytes")
  -- A server with --data-dir knows no times from before its restart: 0 (section 6, STATUS).
  read_time(r, tree, F.details_submitted_ms, F.details_submitted, "submitted_ms",
            "unknown: restored after a restart")
  read_time(r, tree, F.details_started_ms, F.details_started, "started_ms", "not yet")
  read_time(r, tree, F.details_finished_ms, F.details_finished, "finished_ms", "not yet")
  local failure, _, failure_item = r:string(tree, F.details_failure, "failure", nil, 1024)
  if failure_item and failure == "" then failure_item:append_text("(none)") end
  text = string.format("job %s %s, %s+%s", id, text, mapper, reducer)
  if tenant ~= "" then text = text .. " of " .. tenant end
  return text
end

-- STATUS's OK: Progress, or Details when the STATUS asked for them.
local function read_status_ok(r, tree, record)
  if asked_for_details(record) then return read_job_details(r, tree) end
  local id, text = read_progress(r, tree)
  return "job " .. id .. " " .. text
end

-- An options byte (LIST's, STATUS's, STATS's), whose only defined bit is bit 0: the byte as
-- options_field, bit 0 under it as bit_field. Returns `meaning` ("with tenants") when the byte
-- is exactly bit 0, else "options 0x02".
local function read_options(r, tree, options_field, bit_field, meaning)
  local options, item = r:uint(tree, options_field, 1, "options")
  if item then
    item:add(bit_field, r.tvb(r.pos - 1, 1))
    if options >= 2 then  -- only bit 0 is defined (Lua 5.2 has no bit operators)
      item:add_proto_expert_info(E.unknown_code, "undefined option bits set")
    end
  end
  if options == 1 then return meaning end
  return string.format("options 0x%02x", options)
end

-- LIST: an empty body (version 1), or u8 options (version 3). A body longer than one byte is
-- refused by the server; its extra bytes are flagged as trailing.
local function read_list(r, tree)
  if r:remaining() == 0 then return "" end
  return read_options(r, tree, F.list_options, F.list_with_tenants, "with tenants")
end

-- STATUS: u32 id, then (version 4) an optional u8 options. As for LIST, bytes after the options
-- are flagged as trailing.
local function read_status_request(r, tree)
  local text = read_job_id(r, tree)
  if r:remaining() == 0 then return text end
  return text .. " " .. read_options(r, tree, F.status_options, F.status_with_details,
                                     "with details")
end

-- STATS: an empty body (version 1), or u8 options (version 4).
local function read_stats_request(r, tree)
  if r:remaining() == 0 then return "" end
  return read_options(r, tree, F.stats_options, F.stats_with_details, "with details")
end

-- Whether the rest of the body is exactly a list of (u32 id, u8 state, string tenant). Reads
-- nothing into the tree and moves nothing: it only measures.
local function is_tenant_list(r)
  local tvb, pos, size = r.tvb, r.pos, r.size
  if size - pos < 8 then return false end
  local count = tvb(pos, 8):le_uint64():tonumber()
  pos = pos + 8
  if count * 13 > size - pos then return false end  -- each row takes at least 13 bytes
  for _ = 1, count do
    if size - pos < 13 then return false end
    local length = tvb(pos + 5, 8):le_uint64():tonumber()
    pos = pos + 13
    if length > size - pos then return false end
    pos = pos + length
  end
  return pos == size
end

-- LIST's OK: list of (u32 id, u8 state), or, when the LIST asked for tenants (version 3), list
-- of (u32 id, u8 state, string tenant). The body itself tells which: a list of n > 0 rows
-- without tenants is 8 + 5n bytes, and can never be read exactly as n rows of 13 bytes or more,
-- so the tenant layout is tried first. (The two layouts of an empty list are the same 8 bytes.)
local function read_job_list(r, tree)
  local with_tenants = is_tenant_list(r)
  local count, count_item = r:count(tree, F.job_count, with_tenants and 13 or 5, "job count")
  if count_item and with_tenants then count_item:append_text(" (with tenants)") end
  r:list(tree, count, function(i, list_tree)
    r:subtree(list_tree, "Job", function(job)
      local id = r:uint(job, F.job_id, 4, "job id")
      local state, state_item = r:uint(job, F.state, 1, "state")
      check_defined(state_item, STATE_NAMES, state, "job state")
      local text = id .. " " .. name_or_number(STATE_NAMES, state, "state")
      if not with_tenants then return text end
      local tenant, _, tenant_item = r:string(job, F.list_tenant, "tenant", MAX_NAME)
      if tenant == "" then
        if tenant_item then tenant_item:append_text("(none: submitted without a token)") end
        return text
      end
      return text .. " " .. tenant
    end)
  end)
  return count .. (count == 1 and " job" or " jobs") .. (with_tenants and ", with tenants" or "")
end

-- "250 us", "2.5 ms", "60 s": microseconds in the largest unit not above them, to at most three
-- decimals (display only: the fields hold the exact microseconds).
local function duration_text(us)
  local value, unit = us, "us"
  if us >= 1000000 then value, unit = us / 1000000, "s"
  elseif us >= 1000 then value, unit = us / 1000, "ms" end
  local text = string.format("%.3f", value):gsub("%.?0+$", "")
  return text .. " " .. unit
end

-- "<= 2.5 ms", "+Inf"
local function bound_text(raw)
  if raw == HISTOGRAM_INF then return "+Inf" end
  return "<= " .. duration_text(raw:tonumber())
end

-- A Histogram (STATS's details): list of (u64 upper_us, u64 count), then u64 sum_us. The bounds
-- rise to the last one, +Inf; the counts are cumulative, so they never fall and the last is the
-- total. A histogram that breaks these rules is flagged, and shown all the same. `noun` names
-- what was timed ("task"). (Bounds and counts are compared as UInt64: exact up to 2^64 - 1.)
local function read_histogram(r, tree, field, noun)
  local start = r.pos
  local item = tree and tree:add(field, r.tvb(start, 0))
  local buckets = r:count(item, F.histogram_bucket_count, 16, "bucket count")
  local last_bound, total = nil, UInt64(0)
  r:list(item, buckets, function(i, list_tree)
    local bound_range = r:take(8, "upper_us")
    local count_range = r:take(8, "count")
    local bound, count = bound_range:le_uint64(), count_range:le_uint64()
    if list_tree then
      local bucket = list_tree:add(r.tvb(bound_range:offset(), 16),
        string.format("Bucket %s: %s: %s", i, bound_text(bound), tostring(count)))
      local bound_item = bucket:add_le(F.histogram_upper_us, bound_range)
      if bound == HISTOGRAM_INF then
        bound_item:set_text("Upper bound (us): +Inf")
      elseif bound >= UInt64(1000) then
        bound_item:append_text(" (" .. duration_text(bound:tonumber()) .. ")")
      end
      bucket:add_le(F.histogram_count, count_range)
      if last_bound and not (last_bound < bound) then
        bucket:add_proto_expert_info(E.bad_histogram, "bound not above the one before")
      end
      if count < total then
        bucket:add_proto_expert_info(E.bad_histogram,
                                     "count below the one before (counts are cumulative)")
      end
    end
    last_bound, total = bound, count
  end)
  local sum, sum_item = r:u64(item, F.histogram_sum_us, "sum_us")
  if item then
    if sum >= 1000 then sum_item:append_text(" (" .. duration_text(sum) .. ")") end
    item:set_len(r.pos - start)
    local plural = tostring(total) == "1" and "" or "s"
    item:append_text(string.format(": %s %s%s, %s in all (%s buckets)", tostring(total), noun,
                                   plural, duration_text(sum), buckets))
    if buckets == 0 then
      item:add_proto_expert_info(E.bad_histogram, "no buckets (the last one's bound is +Inf)")
    elseif last_bound ~= HISTOGRAM_INF then
      item:add_proto_expert_info(E.bad_histogram, "the last bucket's bound is not +Inf")
    end
  end
end

-- STATS's OK: fourteen u64 counters; then, when the STATS asked for details (version 4), u64
-- workers_busy, u64 tasks_done, Histogram task_us, Histogram job_us.
local function read_server_stats(r, tree, record)
  local values = {}
  for i, name in ipairs(STATS_COUNTERS) do values[name] = r:u64(tree, STATS_FIELDS[i], name) end
  local text = string.format("up %s ms, %s jobs submitted, %s unfinished", values.uptime_ms,
                             values.jobs_submitted, values.jobs_unfinished)
  if not asked_for_details(record) then return text end
  local busy = r:u64(tree, F.stats_workers_busy, "workers_busy")
  local tasks_done = r:u64(tree, F.stats_tasks_done, "tasks_done")
  read_histogram(r, tree, F.stats_task_us, "task")
  read_histogram(r, tree, F.stats_job_us, "job")
  return string.format("%s, %s/%s workers busy, %s tasks done", text, busy, values.workers,
                       tasks_done)
end

-- Result kind 0: u64 count, then (string key, u64 occurrences).
local function read_counts(r, tree)
  local count = r:count(tree, F.counts_count, 16, "entry count")
  r:list(tree, count, function(i, list_tree)
    r:subtree(list_tree, "Entry " .. i, function(entry)
      local key = r:string(entry, F.counts_key, "key", nil, 256)
      local occurrences = r:u64(entry, F.counts_occurrences, "occurrences")
      return string.format("\"%s\" %s", key, occurrences)
    end)
  end)
  return "counts, " .. count .. (count == 1 and " entry" or " entries")
end

-- Result kind 1: u64 count, then (string word, list<string> documents).
local function read_postings(r, tree)
  local count = r:count(tree, F.postings_count, 16, "word count")
  r:list(tree, count, function(i, list_tree)
    r:subtree(list_tree, "Posting " .. i, function(posting)
      local word = r:string(posting, F.postings_word, "word", nil, 256)
      local documents = r:count(posting, F.postings_document_count, 8, "document count")
      r:list(posting, documents, function(_, document_tree)
        r:string(document_tree, F.postings_document, "document name", nil, 256)
      end)
      return string.format("%s in %s", word, documents)
    end)
  end)
  return "postings, " .. count .. (count == 1 and " word" or " words")
end

-- Result kind 2: a matrix, laid out as in SUBMIT.
local function read_result_matrix(r, tree)
  return "matrix " .. read_matrix(r, tree, "Matrix")
end

-- Result kind 3: u64 count, f64 mean, median, mode, min, max.
local function read_statistics(r, tree)
  local count = r:u64(tree, F.statistics_count, "count")
  local mean = r:f64(tree, F.statistics_mean, "mean")
  r:f64(tree, F.statistics_median, "median")
  r:f64(tree, F.statistics_mode, "mode")
  r:f64(tree, F.statistics_min, "min")
  r:f64(tree, F.statistics_max, "max")
  return string.format("statistics, count %s, mean %g", count, mean)
end

local RESULT_READERS = { [0] = read_counts, read_postings, read_result_matrix, read_statistics }

-- "job 7 " when the request named a job (a FETCH, STATUS or CANCEL of a well-formed id).
local function job_prefix(record)
  local job_id = record.request and record.request.job_id
  return job_id and ("job " .. job_id .. " ") or ""
end

-- FETCH's OK: u8 result_kind, then the result of that kind.
local function read_result(r, tree, record)
  local kind = r:uint(tree, F.result_kind, 1, "result kind")
  local read = RESULT_READERS[kind]
  if not read then malformed("undefined result kind %s", kind) end
  return job_prefix(record) .. r:subtree(tree, "Result", function(sub) return read(r, sub) end)
end

-- CANCEL's OK: an empty body.
local function read_cancel_ok(r, tree, record)
  return job_prefix(record) .. "cancelled"
end

-- Every status but OK and PENDING: one string, a message in English.
local function read_error(r, tree, record)
  local message, _, item = r:string(tree, F.error_message, "message", nil, 1024)
  if item then item:add_proto_expert_info(E.error_reply, STATUS_NAMES[record.code]) end
  return message
end

local REQUEST_READERS = {
  [OP.SUBMIT] = read_submit, [OP.FETCH] = read_job_id, [OP.STATUS] = read_status_request,
  [OP.CANCEL] = read_job_id, [OP.LIST] = read_list, [OP.STATS] = read_stats_request,
  [OP.HELLO] = read_hello, [OP.AUTH] = read_auth,
}

-- The body of an OK depends on what it answers.
local OK_READERS = {
  [OP.SUBMIT] = read_job_id, [OP.FETCH] = read_result, [OP.STATUS] = read_status_ok,
  [OP.CANCEL] = read_cancel_ok, [OP.LIST] = read_job_list, [OP.STATS] = read_server_stats,
  [OP.HELLO] = read_hello_ok, [OP.AUTH] = read_auth_ok,
}

------------------------------------------------------------------------------------------------
-- 4. Pairing replies with requests
--
-- Replies come in the order of the requests (section 1), so each TCP stream keeps a FIFO of its
-- requests; a reply takes the oldest. This only makes sense in capture order, which is the order
-- of Wireshark's first pass over the file. Later passes (the GUI clicking on a frame, tshark -2)
-- revisit frames in any order, so the first pass stores what it found in `pdu_records`, keyed by
-- frame number and the PDU's rank in the frame, and later passes look it up.
------------------------------------------------------------------------------------------------

local streams = {}      -- TCP stream key -> { server_port, queue, head, tail, lost_from,
                       --                   first_frame, found_by_heuristic }
local pdu_records = {}  -- "frame:rank" -> { frame, code, is_request, job_id, hello_version,
                       --                  options, request, reply_frame }

function mrd.init()  -- a new capture file: forget the old one
  streams = {}
  pdu_records = {}
end

local tcp_stream_field = Field.new("tcp.stream")

local function stream_key(pinfo)
  local index = tcp_stream_field()
  if index then return index.value end
  -- Not called over TCP's usual path: both endpoints, in an order that does not depend on
  -- the direction.
  local a = tostring(pinfo.src) .. ":" .. pinfo.src_port
  local b = tostring(pinfo.dst) .. ":" .. pinfo.dst_port
  return (a < b) and (a .. "-" .. b) or (b .. "-" .. a)
end

local function stream_of(pinfo, create)
  local key = stream_key(pinfo)
  local stream = streams[key]
  if not stream and create then
    stream = { queue = {}, head = 1, tail = 0 }
    streams[key] = stream
  end
  return stream
end

-- The rank of this PDU among the PDUs of this frame. pinfo.private lives for one dissection of
-- one frame, so the count starts again each time the frame is dissected, in any pass. (The TCP
-- dissector may call us more than once per frame: once for a PDU it reassembled, once for the
-- PDUs that follow it in the segment; the count spans those calls.)
local function next_pdu_rank(pinfo)
  local rank = tonumber(pinfo.private.mrd_pdus or "0") + 1
  pinfo.private.mrd_pdus = tostring(rank)
  return rank
end

-- A FETCH, STATUS or CANCEL names a job; its reply's summary mentions it too. (A STATUS may
-- have an options byte after the id: version 4.)
local function request_job_id(tvb, code)
  local names_job = code == OP.FETCH or code == OP.STATUS or code == OP.CANCEL
  local length = tvb:len() - HEADER_SIZE
  if names_job and (length == 4 or (code == OP.STATUS and length == 5)) then
    return tvb(HEADER_SIZE, 4):le_uint()
  end
end

-- A STATUS's or STATS's options byte (version 4) tells the layout of its OK: with bit 0, the
-- details (see asked_for_details). Nil without the byte, or for a body of the wrong length (the
-- server answers BAD_REQUEST, whose layout does not depend on it).
local function request_options(tvb, code)
  local length = tvb:len() - HEADER_SIZE
  if code == OP.STATUS and length == 5 then return tvb(HEADER_SIZE + 4, 1):uint() end
  if code == OP.STATS and length == 1 then return tvb(HEADER_SIZE, 1):uint() end
end

-- A HELLO asks for a protocol version; the layout of its OK depends on it (flags from 2 on).
-- (A LIST's options tell its OK's layout too, but that OK's own bytes tell it as well: see
-- read_job_list.)
local function request_hello_version(tvb, code)
  if code == OP.HELLO and tvb:len() >= HEADER_SIZE + 2 then return tvb(HEADER_SIZE, 2):le_uint() end
end

-- The record of this PDU: made (and the queue updated) on the first visit, looked up afterwards.
local function pdu_record(tvb, pinfo, stream, rank, is_request)
  local key = pinfo.number .. ":" .. rank
  local record = pdu_records[key]
  if record then return record end
  local code = tvb(0, 1):uint()
  record = { frame = pinfo.number, code = code, is_request = is_request }
  if is_request then
    record.job_id = request_job_id(tvb, code)
    record.hello_version = request_hello_version(tvb, code)
    record.options = request_options(tvb, code)
    stream.tail = stream.tail + 1
    stream.queue[stream.tail] = record
  elseif stream.head <= stream.tail then
    record.request = stream.queue[stream.head]
    stream.queue[stream.head] = nil
    stream.head = stream.head + 1
    record.request.reply_frame = pinfo.number
  end
  pdu_records[key] = record
  return record
end

local function add_pairing(tree, record)
  if record.is_request then
    if record.reply_frame then tree:add(F.reply_in, record.reply_frame):set_generated() end
  elseif record.request then
    tree:add(F.request_in, record.request.frame):set_generated()
    tree:add(F.request_opcode, record.request.code):set_generated()
  else
    tree:add_proto_expert_info(E.unpaired)  -- the capture started after the request
  end
end

-- Which reader decodes this PDU's body, or nil if nothing tells its layout: an undefined opcode
-- or status (the header item says so), or an OK whose request is not in the capture.
local function body_reader(record)
  if record.is_request then return REQUEST_READERS[record.code] end
  if record.code == ST.OK then return record.request and OK_READERS[record.request.code] end
  if record.code == ST.PENDING then return read_pending end
  if STATUS_NAMES[record.code] then return read_error end
end

-- Decodes the body and returns its summary. Malformed bodies (and, should there be any, bugs in
-- this file) become expert infos: pcall keeps a Lua error from hiding the rest of the capture.
local function dissect_body(tvb, tree, record)
  local read = body_reader(record)
  if not read then
    if tvb:len() > HEADER_SIZE then tree:add(F.body, tvb(HEADER_SIZE)) end
    return ""
  end
  local r = Reader.new(tvb, HEADER_SIZE)
  local ok, summary = pcall(read, r, tree, record)
  if not ok then
    if getmetatable(summary) == Malformed then
      tree:add_tvb_expert_info(E.malformed, tvb(HEADER_SIZE), summary.message)
    else
      tree:add_proto_expert_info(E.bug, tostring(summary))
    end
    return "[malformed]"
  end
  if r:remaining() > 0 then
    tree:add_tvb_expert_info(E.trailing, tvb(r.pos),
                             string.format("%s bytes after the last field", r:remaining()))
  end
  return summary
end

------------------------------------------------------------------------------------------------
-- 5. Frames over TCP
------------------------------------------------------------------------------------------------

local function code_name(is_request, code)
  if is_request then return name_or_number(OPCODE_NAMES, code, "opcode") end
  return name_or_number(STATUS_NAMES, code, "status")
end

-- "SUBMIT words+sum", "FETCH job 7", "OK: job 7", "PENDING: mapping 1/4"
local function info_text(is_request, code, summary)
  local name = code_name(is_request, code)
  if summary == "" then return name end
  return name .. (is_request and " " or ": ") .. summary
end

-- Several PDUs in one frame share its Info column: the first sets it, the others append.
local function add_info(pinfo, rank, text)
  pinfo.cols.protocol = "MRD"
  if rank == 1 then pinfo.cols.info:set(text) else pinfo.cols.info:append(" | " .. text) end
end

local function add_header(tree, tvb, is_request)
  local code_item = tree:add(is_request and F.opcode or F.status, tvb(0, 1))
  check_defined(code_item, is_request and OPCODE_NAMES or STATUS_NAMES, tvb(0, 1):uint(),
                is_request and "opcode" or "status")
  tree:add_le(F.body_length, tvb(1, 4))
end

-- "mrd ..., Reply: OK: job 7 (reply to SUBMIT in frame 8)" on the PDU's tree item, and the
-- same without the pairing in the Info column.
local function label_pdu(pinfo, tree, record, rank, summary)
  local text = info_text(record.is_request, record.code, summary)
  tree:append_text((record.is_request and ", Request: " or ", Reply: ") .. text)
  if record.request then
    tree:append_text(string.format(" (reply to %s in frame %s)",
                                   code_name(true, record.request.code), record.request.frame))
  end
  add_info(pinfo, rank, text)
end

-- One whole frame (header and body) in `tvb`.
local function dissect_pdu(tvb, pinfo, root, stream, is_request)
  local rank = next_pdu_rank(pinfo)
  local record = pdu_record(tvb, pinfo, stream, rank, is_request)
  local tree = root:add(mrd, tvb())
  add_header(tree, tvb, is_request)
  add_pairing(tree, record)
  label_pdu(pinfo, tree, record, rank, dissect_body(tvb, tree, record))
end

-- A header announcing a body over the limit: the server answers FRAME_TOO_LARGE and closes
-- (section 3), so the bytes after it are not frames. Show the header, pair it (it does get a
-- reply), and mark the rest of this direction as not dissectable.
local function dissect_oversized(tvb, pinfo, root, stream, is_request, limit)
  local rank = next_pdu_rank(pinfo)
  local record = pdu_record(tvb, pinfo, stream, rank, is_request)
  local tree = root:add(mrd, tvb(0, HEADER_SIZE))
  add_header(tree, tvb, is_request)
  add_pairing(tree, record)
  local length = tvb(1, 4):le_uint()
  tree:add_proto_expert_info(E.too_large,
    string.format("body of %s bytes; the limit is %s", length, limit))
  stream.lost_from = stream.lost_from or {}
  stream.lost_from[pinfo.src_port] = stream.lost_from[pinfo.src_port] or pinfo.number
  label_pdu(pinfo, tree, record, rank, "[body of " .. length .. " bytes: too large]")
end

local function body_limit(is_request, code)
  if is_request and code == OP.AUTH then return MAX_AUTH_BODY end
  if is_request and code ~= OP.SUBMIT then return MAX_SMALL_BODY end
  return MAX_REASSEMBLED_BODY
end

-- Where this stream's server listens, which tells requests (to it) from replies (from it).
-- In order of trust: the port that made TCP call us (our registered port, or "Decode As"), the
-- port preference, and last the destination of the first frame seen (clients speak first).
local function server_port_of(pinfo, stream, matched_port)
  if matched_port and (matched_port == pinfo.src_port or matched_port == pinfo.dst_port) then
    return matched_port
  end
  local preferred = mrd.prefs.port
  if preferred == pinfo.src_port or preferred == pinfo.dst_port then return preferred end
  stream.server_port = stream.server_port or pinfo.dst_port
  return stream.server_port
end

-- Dissects the frames in one TCP segment (or reassembled run of segments). A frame may be split
-- over segments, or a segment hold several frames: we dissect every whole frame and ask TCP for
-- the bytes still missing, and TCP calls again with the frame reassembled.
local function dissect_segment(tvb, pinfo, root, matched_port)
  local stream = stream_of(pinfo, true)
  local is_request = pinfo.dst_port == server_port_of(pinfo, stream, matched_port)
  local lost_from = stream.lost_from and stream.lost_from[pinfo.src_port]
  if lost_from and pinfo.number > lost_from then
    pinfo.cols.protocol = "MRD"
    pinfo.cols.info:set("[data after a frame over the limit; not dissected]")
    return tvb:len()
  end
  local offset, size = 0, tvb:len()
  while offset < size do
    local available = size - offset
    if available < HEADER_SIZE then
      pinfo.desegment_offset = offset
      pinfo.desegment_len = DESEGMENT_ONE_MORE_SEGMENT  -- the header tells the rest
      return size
    end
    local code = tvb(offset, 1):uint()
    local body_length = tvb(offset + 1, 4):le_uint()
    local limit = body_limit(is_request, code)
    if body_length > limit then
      dissect_oversized(tvb(offset):tvb(), pinfo, root, stream, is_request, limit)
      return size
    end
    local frame_length = HEADER_SIZE + body_length
    if available < frame_length then
      pinfo.desegment_offset = offset
      pinfo.desegment_len = frame_length - available
      return size
    end
    dissect_pdu(tvb(offset, frame_length):tvb(), pinfo, root, stream, is_request)
    offset = offset + frame_length
  end
  return offset
end

-- Called by TCP for our port, or for a port given to "Decode As"; pinfo.match_uint is that port.
function mrd.dissector(tvb, pinfo, root)
  return dissect_segment(tvb, pinfo, root, pinfo.match_uint)
end

------------------------------------------------------------------------------------------------
-- Heuristic: recognise a stream by its first request (off unless the preference is set)
------------------------------------------------------------------------------------------------

-- Exact body lengths of the fixed-size requests, and the longest of those with an options byte
-- (LIST from version 3 on, STATUS and STATS from version 4 on): 0 or 1, 4 or 5.
local FIXED_BODY_LENGTH = { [OP.FETCH] = 4, [OP.CANCEL] = 4 }
local OPTIONAL_BYTE_BODY_LENGTH = { [OP.LIST] = 1, [OP.STATUS] = 5, [OP.STATS] = 1 }
-- Smallest SUBMIT body: two empty names, the options, an empty key, a kind, an empty list.
local MIN_SUBMIT_BODY = 8 + 8 + 8 + 4 + 4 + 4 + 8 + 1 + 8

-- Whether the bytes at the very start of a stream could be an mrd request. A header not all
-- here yet is judged by its opcode alone; a whole one by the body length its opcode allows.
local function looks_like_request(tvb)
  if tvb:len() < 1 or not OPCODE_NAMES[tvb(0, 1):uint()] then return false end
  if tvb:len() < HEADER_SIZE then return true end
  local opcode = tvb(0, 1):uint()
  local length = tvb(1, 4):le_uint()
  if FIXED_BODY_LENGTH[opcode] then return length == FIXED_BODY_LENGTH[opcode] end
  local longest = OPTIONAL_BYTE_BODY_LENGTH[opcode]
  if longest then return length == longest or length == longest - 1 end
  if opcode == OP.HELLO then
    return length >= 10 and length <= MAX_SMALL_BODY
           and (tvb:len() < 7 or tvb(5, 2):le_uint() >= 1)
  end
  if opcode == OP.AUTH then  -- one string, the token: its length is all the rest of the body
    return length >= 8 and length <= MAX_AUTH_BODY
           and (tvb:len() < 13 or tvb(5, 8):le_uint64():tonumber() == length - 8)
  end
  return length >= MIN_SUBMIT_BODY and length <= MAX_REASSEMBLED_BODY  -- a SUBMIT
         and (tvb:len() < 13 or tvb(5, 8):le_uint64():tonumber() <= MAX_NAME)
end

local tcp_seq_field = Field.new("tcp.seq")  -- relative: 1 is the first byte of the stream

-- Only a stream's first bytes are judged: in the middle of a stream, any byte below 8 followed
-- by a small number would pass for a header. And only the first bytes of the stream as a whole,
-- which are its client's (clients speak first), not those of the server's direction: an error
-- reply (status 7, one string) is laid out exactly as an AUTH request (opcode 7, one string).
-- Once a stream is recognised, all of it is ours.
local function heuristic(tvb, pinfo, root)
  if not mrd.prefs.heuristic then return false end
  local stream = stream_of(pinfo, false)
  if not (stream and stream.found_by_heuristic) then
    local seq = tcp_seq_field()
    if not (seq and seq.value == 1) then return false end
    stream = stream_of(pinfo, true)
    stream.first_frame = stream.first_frame or pinfo.number  -- kept for the later passes
    if stream.first_frame ~= pinfo.number or not looks_like_request(tvb) then return false end
    stream.found_by_heuristic = true
    stream.server_port = stream.server_port or pinfo.dst_port
  end
  dissect_segment(tvb, pinfo, root, nil)
  return true
end

------------------------------------------------------------------------------------------------
-- Registration
------------------------------------------------------------------------------------------------

local tcp_ports = DissectorTable.get("tcp.port")
local registered_port = 0

local function register_port(port)
  if registered_port ~= 0 then tcp_ports:remove(registered_port, mrd) end
  if port ~= 0 then tcp_ports:add(port, mrd) end
  registered_port = port
end

function mrd.prefs_changed()
  if mrd.prefs.port ~= registered_port then register_port(mrd.prefs.port) end
end

register_port(DEFAULT_PORT)
tcp_ports:add_for_decode_as(mrd)  -- lists mrd in "Decode As" even when the port preference is 0
mrd:register_heuristic("tcp", heuristic)
-- Over TLS (mrd --tls-listen): once TLS has decrypted a stream (with a key log), "Decode As" on
-- the TLS port (tshark -d tls.port==PORT,mrd) hands its application data to this dissector.
DissectorTable.get("tls.port"):add_for_decode_as(mrd)
