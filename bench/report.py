#!/usr/bin/env python3
"""Turns bench/results/latest.json into docs/benchmarks.md and the plots docs/bench-*.png.

    python3 bench/report.py [bench/results/latest.json]

Every figure is a median over the runs of one suite run, shown with its min-max range; every
speed is also given as a ratio to a baseline measured in the same run. The prose about method
lives here; bench/profiling.md (hand-written) is included as the profiling section.
"""
import json
import os
import shutil
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DOCS = os.path.join(ROOT, "docs")
MIB = 1 << 20


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def rng(values, fmt="%.3g"):
    """'median (min-max)' of a list, or the one value, or '-'."""
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    m = statistics.median(values)
    if len(values) == 1 or min(values) == max(values):
        return fmt % m
    return (fmt + " (" + fmt + "-" + fmt + ")") % (m, min(values), max(values))


def f(x, fmt="%.3g"):
    return "-" if x is None else fmt % x


def rates(bytes_, seconds):
    return [bytes_ / MIB / s for s in seconds if s]


def met(ok):
    return "**met**" if ok else "**not met**"


class Report:
    def __init__(self, data):
        self.data = data
        self.meta = data["meta"]
        self.s = data["sections"]
        self.out = []
        self.targets = []
        self.plots = []

    def w(self, *lines):
        self.out.extend(lines)

    # ---------- the targets ----------

    def summarise(self):
        s = self.s
        t = self.targets
        if "wordcount" in s:
            for wc in s["wordcount"]:
                c = wc["corpus"]
                name = "%s (%.0f MiB)" % (c["name"], c["bytes"] / MIB)
                mrd = med(rates(c["bytes"], wc["mrd_s"]))
                b2 = med(rates(c["bytes"], wc["baseline2_s"]))
                ratio = mrd / b2 if mrd and b2 else None
                t.append(("Word count end to end through the client library, %s" % name,
                          ">= 0.8x the in-process 2-thread baseline (goal 1.0x)",
                          "%.0f MiB/s" % mrd, "%.0f MiB/s" % b2, "%.2fx" % ratio,
                          ratio is not None and ratio >= 0.8))
                cli = med(rates(c["bytes"], wc["mrctl_s"]))
                if cli:
                    t.append(("`mrctl wordcount --all`, %s" % name,
                              ">= 0.6x the in-process 2-thread baseline", "%.0f MiB/s" % cli,
                              "%.0f MiB/s" % b2, "%.2fx" % (cli / b2), cli / b2 >= 0.6))
                if wc.get("mrd_peak_rss_kib"):
                    peak = wc["mrd_peak_rss_kib"] * 1024 / c["bytes"]
                    t.append(("Server peak RSS during the word count, %s" % name,
                              "<= 1.5x the input", "%.0f MiB" % (wc["mrd_peak_rss_kib"] / 1024),
                              "%.0f MiB input" % (c["bytes"] / MIB), "%.2fx" % peak,
                              peak <= 1.5))
        if "matmul" in s:
            for p in s["matmul"]:
                if p["n"] != 2000:
                    continue
                mrd, blas = med(p["mrd_s"]), med(p["blas2_s"])
                ratio = mrd / blas
                t.append(("Matrix product n=2000 end to end through the client library (time)",
                          "<= 1.5x OpenBLAS 2-thread time", "%.3f s" % mrd, "%.3f s" % blas,
                          "%.2fx" % ratio, ratio <= 1.5))
                if p.get("npy"):
                    q = p["npy"]
                    cli, npy = med(q["mrctl_s"]), med(q["numpy_s"])
                    t.append(("`mrctl matmul A.npy B.npy --out C.npy`, n=2000 (time)",
                              "<= 2.5x numpy's in-process product", "%.3f s" % cli,
                              "%.3f s" % npy, "%.2fx" % (cli / npy), cli / npy <= 2.5))
        if "tiny" in s:
            for row in s["tiny"]:
                if row["connections"] != 32:
                    continue
                sub = med([o["rate"] for o in row["submit"]])
                red = med([o["rate"] for o in row["redis"]])
                if red:
                    t.append(("Submit-only requests/s, 32 connections",
                              ">= 0.6x Redis LPUSH (redis-benchmark -P 1)", "%.0f/s" % sub,
                              "%.0f/s" % red, "%.2fx" % (sub / red), sub / red >= 0.6))
                rt = med([o["rate"] for o in row["roundtrip"]])
                p99 = med([o["p99_ms"] for o in row["roundtrip"]])
                gear = med([o["rate"] for o in row["gearman"]])
                if gear:
                    t.append(("Round trips (SUBMIT + FETCH until done), 32 connections",
                              ">= 1.3x gearmand", "%.0f jobs/s, p99 %.2f ms" % (rt, p99),
                              "gearmand %.0f jobs/s" % gear, "%.2fx" % (rt / gear),
                              rt / gear >= 1.3))
        if "hol" in s:
            h = s["hol"]
            without_p99 = med([o["p99_ms"] for o in h["without"]])
            for key, how in [("with", "in memory"), ("with_data_dir", "with `--data-dir`")]:
                if not h.get(key):
                    continue
                with_p99 = med([o["p99_ms"] for o in h[key]])
                t.append(("Tiny-job p99, 8 connections, while a 64 MiB word count runs, %s" % how,
                          "p99 < 20 ms", "%.1f ms" % with_p99,
                          "%.2f ms without the big job" % without_p99,
                          "%.1fx" % (with_p99 / without_p99), with_p99 < 20))
        if "memory" in s:
            m = s["memory"]
            if "idle" in m:
                b = m["idle"]["bytes_per_connection"]
                t.append(("Memory per idle connection (server RSS, 10,000 connections)",
                          "<= 2 KiB", "%.2f KiB" % (b / 1024), "2 KiB",
                          "%.2fx" % (b / 2048), b <= 2048))
            if "retained" in m:
                b = m["retained"]["bytes_per_job"]
                t.append(("Memory per retained finished tiny job (server RSS, 20,000 jobs)",
                          "<= 1 KiB", "%.0f B" % b, "1 KiB", "%.2fx" % (b / 1024), b <= 1024))

        if "tls" in s:
            x = s["tls"]
            plain = med([o["rate"] for o in x["roundtrip"]["plain"]])
            over = med([o["rate"] for o in x["roundtrip"]["tls"]])
            t.append(("Tiny round trips over TLS, 32 connections (`loadgen blocking`)",
                      ">= 0.7x plain TCP", "%.0f jobs/s" % over, "%.0f jobs/s plain" % plain,
                      "%.2fx" % (over / plain), over / plain >= 0.7))
            b = x["corpus"]["bytes"]
            plain = med(rates(b, x["wordcount"]["plain"]))
            over = med(rates(b, x["wordcount"]["tls"]))
            t.append(("64 MiB word count end to end over TLS, client library",
                      ">= 0.8x plain TCP", "%.0f MiB/s" % over, "%.0f MiB/s plain" % plain,
                      "%.2fx" % (over / plain), over / plain >= 0.8))

    # ---------- sections ----------

    def header(self):
        m = self.meta
        mach = m["machine"]
        self.w("# Benchmarks",
               "",
               "<!-- Generated by bench/report.py from bench/results/latest.json: edit those, "
               "not this file. -->",
               "",
               "How fast `mrd` is end to end, against baselines measured in the same run: the same "
               "work done in-process (a good hash map word count, OpenBLAS), Redis and gearmand. "
               "Everything runs on one machine over loopback; every server listens on 127.0.0.1.",
               "",
               "| | |",
               "|---|---|",
               "| command | `%s` |" % m["command"],
               "| date | %s |" % (m["date"] if len(set(m.get("section_dates", {}).values())) <= 1
                                   else "; ".join("%s %s" % kv
                                                  for kv in m["section_dates"].items())),
               "| commit | %s |" % mach.get("commit", "?"),
               "| machine | %s x %s (%s), %s RAM, Linux %s |" % (
                   mach["nproc"], mach["cpu"], ("VM: " + mach["hypervisor"]) if mach.get(
                       "hypervisor") else "bare metal", mach["memory"], mach["kernel"]),
               "| compiler | %s, CMake Release (-O3) |" % mach["compiler"],
               "| repetitions | %d runs per big-job point, %d rounds of %.1f s per tiny-job point "
               "|" % (m["runs"], m["reps"], m["tiny_seconds"]),
               "| suite run time | %.0f s (%s) |" % (m["seconds"], ", ".join(
                   "%s %.0f s" % kv for kv in m.get("section_seconds", {}).items())),
               "| load average (1 min) at the start of each section | %s |" % ", ".join(
                   "%s %.1f" % (k[:-7], v[0]) for k, v in m["load"].items()
                   if k.endswith("_before")),
               "")
        if m.get("quick"):
            self.w("> **Quick mode**: fewer runs and shorter tiny-job points; use the full suite "
                   "for figures to quote.", "")

    def targets_table(self):
        self.w("## Summary: the targets", "",
               "Figures are medians (ranges in the sections below).", "",
               "| what | target | measured | baseline | ratio | |",
               "|---|---|---|---|---|---|")
        for what, target, measured, baseline, ratio, ok in self.targets:
            self.w("| %s | %s | %s | %s | %s | %s |" % (what, target, measured, baseline, ratio,
                                                        met(ok)))
        self.w("")

    def howto(self):
        self.w("## Running it", "",
               "```sh",
               "bash bench/run.sh            # everything, about 10 minutes on 2 cores",
               "bash bench/run.sh --quick    # fewer repetitions, under 3 minutes once built",
               "bash bench/run.sh --only tiny,memory   # some sections (merged into latest.json)",
               "python3 bench/report.py      # this page and the plots again, from latest.json",
               "bash bench/profile.sh        # perf, callgrind and massif profiles (above)",
               "```", "",
               "`bench/run.sh` installs what it needs from Debian (`bench/setup.sh`: redis-server, "
               "redis-tools, gearman-job-server, libgearman-dev, gnuplot-nox, and linux-perf and "
               "valgrind for `bench/profile.sh`, on top of "
               "`scripts/setup.sh`), builds Release into `$BENCH_BUILD` (default "
               "`/tmp/mrd-bench/build`), keeps corpora in `/tmp/mrd-bench`, writes every tool's "
               "raw output to `bench/results/latest.json` and regenerates this page and "
               "`docs/bench-*.png`.", "",
               "| program | what |", "|---|---|",
               "| `bench/wordcount_baseline.cpp` | the word count in-process: same tokenisation, "
               "open-addressing table (8-byte key prefix in the slot, key arena), 16 lookups "
               "hashed and prefetched ahead; N threads count slices cut between words, then "
               "merge; then the result sorted as FETCH returns it |",
               "| `bench/matmul_baseline.cpp` | `cblas_dgemm` on the matrices `mrctl matmul "
               "--random N` sends, 1 and 2 OpenBLAS threads |",
               "| `bench/e2e.cpp` | one big job through the client library: SUBMIT (encode, send), "
               "FETCH every 1 ms until the result is decoded; checks the result |",
               "| `bench/loadgen.cpp` | tiny jobs from N connections, one thread, epoll: round "
               "trips, submit-only, idle connections, head-of-line |",
               "| `bench/gearman_bench.cpp` | gearmand worker (same one-line word count) and "
               "client (one thread per connection, `gearman_client_do`) |",
               "| `bench/zipf_corpus.cpp` | the synthetic Zipf corpus, fixed seed |",
               "| `bench/suite.py`, `bench/report.py` | the orchestration, this page |",
               "| `bench/profile.sh`, `bench/profiling.md` | the profiles, and what they show |", "")

    def wordcount(self):
        if "wordcount" not in self.s:
            return
        self.w("## 1. Word count end to end", "",
               "The corpus is sent as one document in one SUBMIT to `mrd --workers 2` (default "
               "chunking); the time runs from the first byte of the SUBMIT to the decoded "
               "result, the corpus already in the client's memory. The baseline is the same "
               "job in one process on the same in-memory text, including the sort into the "
               "result's order (%s). In every run the "
               "baseline's result and mrd's must be identical (same words, counts and order, "
               "compared by digest); `mrctl wordcount --all` is also timed as a user runs it "
               "(reading the file, polling with its back-off (1 to 200 ms, shorter as the progress nears the end), printing every word)." % (
                   self.sort_share()), "",
               "| corpus | size | baseline 1 thread | baseline 2 threads | mrd end to end | "
               "mrd / 2 threads | of which SUBMIT | `mrctl wordcount --all` | same result |",
               "|---|---|---|---|---|---|---|---|---|")
        for wc in self.s["wordcount"]:
            c = wc["corpus"]
            b = c["bytes"]
            ratio = med(rates(b, wc["mrd_s"])) / med(rates(b, wc["baseline2_s"]))
            self.w("| %s | %.1f MiB | %s MiB/s | %s MiB/s | %s MiB/s | %.2fx | %s s | %s MiB/s "
                   "| %s |" % (
                       c["name"], b / MIB, rng(rates(b, wc["baseline1_s"]), "%.0f"),
                       rng(rates(b, wc["baseline2_s"]), "%.0f"), rng(rates(b, wc["mrd_s"]), "%.0f"),
                       ratio, rng(wc["mrd_submit_s"], "%.3f"), rng(rates(b, wc["mrctl_s"]), "%.0f"),
                       ("yes" if wc["same_result"] else "**NO**") +
                       ("" if wc.get("mrctl_totals_match", True) else " (mrctl totals differ)")))
        self.w("")
        for wc in self.s["wordcount"]:
            if wc.get("mrd_peak_rss_kib"):
                self.w("- Server peak RSS during %s (VmHWM of the `mrd` process over all its runs, "
                       "workers not counted): %.0f MiB, %.2fx the input." % (
                           wc["corpus"]["name"], wc["mrd_peak_rss_kib"] / 1024,
                           wc["mrd_peak_rss_kib"] * 1024 / wc["corpus"]["bytes"]))
        for wc in self.s["wordcount"]:
            if wc.get("mrd_cores"):
                self.w("- Cores busy during %s (CPU time / wall time): the 2-thread baseline %s, "
                       "mrd's server and workers %s (the client's encoding not counted)." % (
                           wc["corpus"]["name"], rng(wc["baseline2_cores"], "%.2f"),
                           rng(wc["mrd_cores"], "%.2f")))
        for wc in self.s["wordcount"]:
            c = wc["corpus"]
            d = wc["digests"][0][1].split() if wc["digests"] else ["?", "?"]
            self.w("- **%s**: %s; %s distinct words, %s words in all; sha256 `%s...`." % (
                c["name"], c["what"] + (
                    " (%d source files, first %d MiB of their concatenation in sorted path "
                    "order%s)" % (c["source_files"], round(c["bytes"] / MIB),
                                  ", repeated" if c.get("passes", 1) > 1 else "")
                    if "source_files" in c else ""), d[0], d[1], c["sha256"][:16]))
        self.w("")

    def sort_share(self):
        """How much of the 2-thread baseline's time the final sort takes, per corpus."""
        parts = []
        for wc in self.s["wordcount"]:
            total, count = med(wc["baseline2_s"]), med(wc.get("baseline2_count_s", []))
            if total and count:
                parts.append("%s: %.0f%%" % (wc["corpus"]["name"], 100 * (1 - count / total)))
        return "the sort's share of the 2-thread time: " + ", ".join(parts) if parts else \
            "the sort is included"

    def matmul(self):
        if "matmul" not in self.s:
            return
        self.w("## 2. Matrix product end to end", "",
               "float64, C = A x B with A and B random n x n (`client::random_matrix_pair`, the "
               "matrices of `mrctl matmul --random N`), `mrd --workers 2`; time from the first "
               "byte of the SUBMIT to the decoded product; GFLOP/s = 2n^3 / time. The baseline "
               "is `cblas_dgemm` of the same matrices in-process. Every product is checked "
               "against a local dgemm (largest absolute difference).", "",
               "| n | OpenBLAS 1 thread | OpenBLAS 2 threads | mrd end to end | mrd / OpenBLAS "
               "2 threads (time) | of which SUBMIT | `mrctl matmul --random N` | max abs "
               "error |", "|---|---|---|---|---|---|---|---|")
        for p in self.s["matmul"]:
            n = p["n"]
            fl = 2.0 * n ** 3 / 1e9

            def cell(seconds):
                return "%s s (%.1f GFLOP/s)" % (rng(seconds, "%.3f"), fl / med(seconds))
            self.w("| %d | %s | %s | %s | %.2fx | %s s | %s s | %s |" % (
                n, cell(p["blas1_s"]), cell(p["blas2_s"]), cell(p["mrd_s"]),
                med(p["mrd_s"]) / med(p["blas2_s"]), rng(p["mrd_submit_s"], "%.3f"),
                rng(p["mrctl_s"], "%.3f"), f(p["error"], "%.2g")))
        self.w("")
        for p in self.s["matmul"]:
            if p.get("mrd_cores") and med(p["mrd_s"]) >= 0.1:  # /proc counts 10 ms ticks
                self.w("- n = %d, cores busy (CPU time / wall time): OpenBLAS 2 threads %s, mrd's "
                       "server and workers %s." % (p["n"], rng(p["blas2_cores"], "%.2f"),
                                                     rng(p["mrd_cores"], "%.2f")))
        for p in self.s["matmul"]:
            if p.get("npy"):
                q = p["npy"]
                self.w("- `mrctl matmul A.npy B.npy --out C.npy`, n = %d, as a user runs it "
                       "(reading both files, the job, writing C.npy): %s s; numpy computing the "
                       "same product in one process (`a @ b`, 2 threads, files already loaded): "
                       "%s s; %.2fx; largest difference between the two products %.1e." % (
                           q["n"], rng(q["mrctl_s"], "%.3f"), rng(q["numpy_s"], "%.3f"),
                           med(q["mrctl_s"]) / med(q["numpy_s"]), q["max_abs_error"]))
        self.w("", "OpenBLAS runs with the machine's environment (`%s`), the same for the "
               "baseline and mrd's workers." % (", ".join(
                   "%s=%s" % kv for kv in self.meta["machine"]["openblas_env"].items())
                   or "no OPENBLAS_* variables"), "")

    def tiny(self):
        if "tiny" not in self.s:
            return
        m = self.meta
        self.w("## 3. Tiny jobs", "",
               "`bench/loadgen` (one thread, epoll, like redis-benchmark) opens N connections; "
               "each loops: SUBMIT a one-line word count (63 bytes of text), FETCH at once "
               "after every PENDING until the result is in, next job. Latency is from sending "
               "the SUBMIT to reading the result. Submit-only: SUBMIT and read the id, one "
               "request in flight per connection (as `redis-benchmark -P 1`); its servers run "
               "with `--max-queued-jobs 16777216`, since SUBMITs at full speed queue more than "
               "the default 10,000 unfinished jobs in under a second and the rest would be "
               "QUEUE_FULL, not accepted jobs. Each point: a fresh `mrd --workers 2`, %.1f s "
               "warm-up, %.1f s measured, %d round(s); median (min-max)." % (
                   self.meta.get("tiny_warmup", 0.5), m["tiny_seconds"], m["reps"]), "",
               "References at the same N: `redis-benchmark -t lpush -c N -n %d -P 1` against a "
               "`redis-server --save \"\" --appendonly no` of its own; gearmand (defaults: 4 I/O "
               "threads, in-memory queue) with two `gearman_bench worker` processes doing the "
               "same word count, and `gearman_bench client` with N threads, each one connection "
               "looping `gearman_client_do` (a foreground job: submit and wait)." % max(
                   20000, int(60000 * m["tiny_seconds"])), "",
               "### Round trips", "",
               "| connections | mrd jobs/s | p50 ms | p99 ms | p99.9 ms | FETCHes per job | "
               "gearmand jobs/s | gearmand p99 ms | mrd / gearmand |",
               "|---|---|---|---|---|---|---|---|---|")
        for row in self.s["tiny"]:
            rt, g = row["roundtrip"], row["gearman"]
            rate = med([o["rate"] for o in rt])
            grate = med([o["rate"] for o in g])
            self.w("| %d | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                row["connections"], rng([o["rate"] for o in rt], "%.0f"),
                rng([o["p50_ms"] for o in rt], "%.2f"), rng([o["p99_ms"] for o in rt], "%.2f"),
                rng([o["p999_ms"] for o in rt], "%.1f"),
                f(med([o["fetches_per_job"] for o in rt]), "%.1f"),
                rng([o["rate"] for o in g], "%.0f"), rng([o["p99_ms"] for o in g], "%.2f"),
                ("%.2fx" % (rate / grate)) if grate else "-"))
        self.w("", "### Submit only", "",
               "| connections | mrd SUBMITs/s | p50 ms | p99 ms | Redis LPUSH/s | Redis p99 ms | "
               "mrd / Redis |", "|---|---|---|---|---|---|---|")
        for row in self.s["tiny"]:
            sub, red = row["submit"], row["redis"]
            rate = med([o["rate"] for o in sub])
            rrate = med([o["rate"] for o in red])
            errors = {}
            for o in sub:
                for k, v in o.get("errors", {}).items():
                    errors[k] = errors.get(k, 0) + v
            self.w("| %d | %s%s | %s | %s | %s | %s | %s |" % (
                row["connections"], rng([o["rate"] for o in sub], "%.0f"),
                (" (%s)" % ", ".join("%s %d" % kv for kv in errors.items())) if errors else "",
                rng([o["p50_ms"] for o in sub], "%.3f"), rng([o["p99_ms"] for o in sub], "%.2f"),
                rng([o["rate"] for o in red], "%.0f"), rng([o["p99_ms"] for o in red], "%.2f"),
                ("%.2fx" % (rate / rrate)) if rrate else "-"))
        self.w("", "![tiny jobs](bench-tiny.png)", "")

    def hol(self):
        if "hol" not in self.s:
            return
        h = self.s["hol"]
        w_, wo = h["with"], h["without"]
        big = [x for o in w_ for x in o.get("big_job_s", [])]
        self.w("## 4. Head-of-line blocking", "",
               "8 connections of tiny round trips (as in section 3) against `mrd --workers 2`; "
               "meanwhile a second thread runs the %s word count (64 MiB in one SUBMIT) %d "
               "times in a row through the client library. Only tiny jobs submitted while a big "
               "job was in the server count. The same load without the big job, on the same "
               "server just before, is the baseline." % (h["corpus"], len(big) // max(1, len(w_))),
               "",
               "| | tiny jobs/s | p50 ms | p99 ms | p99.9 ms | max ms | SUBMIT reply p99 ms |",
               "|---|---|---|---|---|---|---|")
        durable = h.get("with_data_dir", [])
        for name, rows in [("without the big job", wo), ("while the big job runs", w_),
                           ("while the big job runs, `--data-dir`", durable)]:
            if not rows:
                continue
            self.w("| %s | %s | %s | %s | %s | %s | %s |" % (
                name, rng([o["rate"] for o in rows], "%.0f"),
                rng([o["p50_ms"] for o in rows], "%.2f"), rng([o["p99_ms"] for o in rows], "%.1f"),
                rng([o["p999_ms"] for o in rows], "%.1f"), rng([o["max_ms"] for o in rows], "%.1f"),
                rng([o.get("submit_p99_ms") for o in rows], "%.1f")))
        self.w("", "Big job end to end: %s s each (%d runs); p99 ratio with/without: %.1fx." % (
            rng(big, "%.3f"), len(big),
            med([o["p99_ms"] for o in w_]) / med([o["p99_ms"] for o in wo])), "")

    def memory(self):
        if "memory" not in self.s:
            return
        m = self.s["memory"]
        self.w("## 5. Memory", "", "VmRSS of the `mrd` server process (not its workers), from "
               "`/proc/PID/status`.", "")
        if "idle" in m:
            i = m["idle"]
            self.w("**Idle connections**: %d connections opened by `loadgen idle` (each says "
                   "HELLO first, so the server has accepted and served it), held 1 s, then "
                   "closed. The server had served 100 connections before, to warm its paths." %
                   i["connections"], "",
                   "| before | with %d open | after they closed | per connection |" %
                   i["connections"], "|---|---|---|---|",
                   "| %.1f MiB | %.1f MiB | %.1f MiB | %.0f bytes |" % (
                       i["rss_before_kib"] / 1024, i["rss_with_kib"] / 1024,
                       i["rss_after_close_kib"] / 1024, i["bytes_per_connection"]), "")
        if "retained" in m:
            r = m["retained"]
            self.w("**Retained finished tiny jobs**: %d one-line word counts run to the end by "
                   "`loadgen roundtrip -c 32`, after 500 to warm up; the server keeps every "
                   "result (far below `--max-retained-mib`)." % r["jobs"], "",
                   "| before | after | per job (RSS) | per job (STATS retained_result_bytes) |",
                   "|---|---|---|---|",
                   "| %.1f MiB | %.1f MiB | %.0f bytes | %.0f bytes |" % (
                       r["rss_before_kib"] / 1024, r["rss_after_kib"] / 1024, r["bytes_per_job"],
                       r["result_bytes_per_job"]), "")

    def tls(self):
        if "tls" not in self.s:
            return
        x = self.s["tls"]
        rt, wc = x["roundtrip"], x["wordcount"]
        b = x["corpus"]["bytes"]
        self.w("## 7. TLS", "",
               "The same server, plain TCP and TLS (`--tls-listen`, TLS 1.3, an ECDSA P-256 "
               "certificate made by openssl) measured alternately in one run. Round trips: "
               "`loadgen blocking -c 32`, 32 threads each with a client-library connection "
               "looping SUBMIT and FETCH until done (the client library speaks TLS; the "
               "one-thread epoll `loadgen roundtrip` of section 3 does not). Word count: `e2e "
               "wordcount` of %s as in section 1." % x["corpus"]["name"], "",
               "| | plain TCP | TLS | TLS / plain |", "|---|---|---|---|")
        p, q = [o["rate"] for o in rt["plain"]], [o["rate"] for o in rt["tls"]]
        self.w("| round trips, jobs/s | %s | %s | %.2fx |" % (
            rng(p, "%.0f"), rng(q, "%.0f"), med(q) / med(p)))
        p99p, p99q = [o["p99_ms"] for o in rt["plain"]], [o["p99_ms"] for o in rt["tls"]]
        self.w("| round trip p99, ms | %s | %s | |" % (rng(p99p, "%.2f"), rng(p99q, "%.2f")))
        p, q = rates(b, wc["plain"]), rates(b, wc["tls"])
        self.w("| word count, MiB/s | %s | %s | %.2fx |" % (
            rng(p, "%.0f"), rng(q, "%.0f"), med(q) / med(p)), "")
        if "idle" in x:
            i = x["idle"]
            self.w("**Idle TLS connections**: %d held by `loadgen idle --tls` (each past its "
                   "handshake and a HELLO): %.1f MiB before, %.1f MiB with them, **%.1f KiB per "
                   "connection** (OpenSSL's session state, asio's TLS buffers and the "
                   "connection's 16 KiB read buffer; a plain idle connection is in section 5)." % (
                       i["connections"], i["rss_before_kib"] / 1024, i["rss_with_kib"] / 1024,
                       i["bytes_per_connection"] / 1024), "")

    def scaling(self):
        if "scaling" not in self.s:
            return
        sc = self.s["scaling"]
        b = sc["bytes"]
        b1 = med(rates(b, sc["baseline1_s"]))
        b2 = med(rates(b, sc["baseline2_s"]))
        self.w("## 6. Scaling", "",
               "Word count of %s (%.0f MiB) end to end, as in section 1. In-process baseline in "
               "the same run: %.0f MiB/s with 1 thread, %.0f MiB/s with 2 (the dashed lines)%s. "
               "This machine has %d cores, so more than 2 workers share them; when other work "
               "loads the machine, more processes also win a larger share of its CPU. "
               "\"cores\" is the CPU time of mrd's server and workers over the wall time." % (
                   sc["corpus"], b / MIB, b1, b2,
                   (", the 2-thread baseline keeping %.2f cores busy" % med(sc["baseline2_cores"]))
                   if sc.get("baseline2_cores") else "", self.meta["machine"]["nproc"]), "",
               "![word count against workers](bench-workers.png)", "",
               "| `mrd --workers` | MiB/s | / 2-thread baseline | map tasks | cores |",
               "|---|---|---|---|---|")
        for p in sc["workers"]:
            self.w("| %d | %s | %.2fx | %d | %s |" % (
                p["workers"], rng(rates(b, p["mrd_s"]), "%.0f"), med(rates(b, p["mrd_s"])) / b2,
                p["map_tasks"], f(p.get("mrd_cores"), "%.2f")))
        self.w("", "![word count against chunk size](bench-chunk.png)", "",
               "| SUBMIT chunk_bytes | MiB/s | / 2-thread baseline | map tasks | cores |",
               "|---|---|---|---|---|")
        for p in sc["chunks"]:
            self.w("| %s | %s | %.2fx | %d | %s |" % (
                human(p["chunk_bytes"]), rng(rates(b, p["mrd_s"]), "%.0f"),
                med(rates(b, p["mrd_s"])) / b2, p["map_tasks"], f(p.get("mrd_cores"), "%.2f")))
        self.w("")

    def caveats(self):
        self.w("## Method and caveats", "",
               "- The machine is shared and has 2 cores: other work may run beside the suite "
               "(the load averages above say how much). So every speed is paired with a "
               "baseline measured in the same run, big-job runs alternate with their baseline "
               "run by run, and figures are medians with their min-max range.",
               "- Compare within a section: the machine's load changes between sections (load "
               "averages above; the \"cores busy\" figures show what the 2-thread baselines "
               "actually got: about 1.8 cores on a quiet machine, 1.0 when the other core is "
               "taken). `--only SECTION` measures a section again and merges it into "
               "latest.json.",
               "- mrd, its 2 workers, the load generator and the reference servers all share "
               "the same 2 cores; so do Redis and gearmand with their clients. Nothing is "
               "pinned.",
               "- Loads are bounded: every tiny-job point stops after its seconds (or a job "
               "count), every big job after its runs; each tool has a time-out.",
               "- End-to-end figures include the client's work: encoding the SUBMIT "
               "(its small fields; the corpus or the matrices are sent from the request itself, "
               "a gather write), sending it over loopback, decoding the result.")
        for note in self.meta.get("notes", []):
            self.w("- " + note)
        self.w("")

    def profiling(self):
        path = os.path.join(HERE, "profiling.md")
        if os.path.exists(path):
            with open(path) as fh:
                self.w(fh.read().rstrip(), "")

    # ---------- plots ----------

    def plot(self):
        if not shutil.which("gnuplot"):
            print("report: gnuplot not installed; no plots", file=sys.stderr)
            return
        work = os.path.join(HERE, "results")
        os.makedirs(work, exist_ok=True)
        style = ("set terminal pngcairo noenhanced size 800,480 font 'sans,11'\n"
                 "set grid\nset key bottom right\n"
                 "set yrange [0:*]\n")
        if "scaling" in self.s:
            sc = self.s["scaling"]
            b = sc["bytes"]
            b1 = med(rates(b, sc["baseline1_s"]))
            b2 = med(rates(b, sc["baseline2_s"]))
            dat = os.path.join(work, "workers.dat")
            with open(dat, "w") as fh:
                for p in sc["workers"]:
                    r = rates(b, p["mrd_s"])
                    fh.write("%d %f %f %f\n" % (p["workers"], med(r), min(r), max(r)))
            self.gnuplot(style + (
                "set output '%s'\nset title 'Word count, %s (%.0f MiB), end to end'\n"
                "set xlabel 'mrd --workers'\nset ylabel 'MiB/s'\nset xtics 1\n"
                "set xrange [0.5:4.5]\n"
                "plot '%s' using 1:2:3:4 with yerrorlines lw 2 pt 7 title 'mrd', "
                "%f with lines dt 2 lw 2 title 'in-process, 1 thread', "
                "%f with lines dt 3 lw 2 title 'in-process, 2 threads'\n") % (
                os.path.join(DOCS, "bench-workers.png"), sc["corpus"], b / MIB, dat, b1, b2))
            dat = os.path.join(work, "chunks.dat")
            with open(dat, "w") as fh:
                for p in sc["chunks"]:
                    r = rates(b, p["mrd_s"])
                    fh.write("%d %f %f %f\n" % (p["chunk_bytes"], med(r), min(r), max(r)))
            self.gnuplot(style + (
                "set output '%s'\nset title 'Word count, %s (%.0f MiB), mrd --workers 2'\n"
                "set xlabel 'SUBMIT chunk_bytes'\nset ylabel 'MiB/s'\nset logscale x 2\n"
                "set xtics ('4K' 4096, '16K' 16384, '64K' 65536, '256K' 262144, '1M' 1048576, "
                "'4M' 4194304, '16M' 16777216, '64M' 67108864)\n"
                "set xrange [3000:90000000]\n"
                "plot '%s' using 1:2:3:4 with yerrorlines lw 2 pt 7 title 'mrd', "
                "%f with lines dt 2 lw 2 title 'in-process, 1 thread', "
                "%f with lines dt 3 lw 2 title 'in-process, 2 threads'\n") % (
                os.path.join(DOCS, "bench-chunk.png"), sc["corpus"], b / MIB, dat, b1, b2))
        if "tiny" in self.s:
            dat = os.path.join(work, "tiny.dat")
            with open(dat, "w") as fh:
                for row in self.s["tiny"]:
                    vals = [med([o["rate"] for o in row[k]]) or 0
                            for k in ("roundtrip", "gearman", "submit", "redis")]
                    fh.write("%d %s\n" % (row["connections"], " ".join("%f" % v for v in vals)))
            self.gnuplot(style + (
                "set output '%s'\nset title 'Tiny jobs (one-line word count)'\n"
                "set xlabel 'connections'\nset ylabel 'per second'\nset logscale x 2\n"
                "set xtics (1, 8, 32, 256)\nset xrange [0.8:320]\nset key outside right top\n"
                "set terminal pngcairo noenhanced size 960,480 font 'sans,11'\n"
                "plot '%s' using 1:2 with linespoints lw 2 pt 7 title 'mrd round trips', "
                "'' using 1:3 with linespoints lw 2 pt 5 dt 2 title 'gearmand round trips', "
                "'' using 1:4 with linespoints lw 2 pt 7 title 'mrd SUBMITs (submit-only)', "
                "'' using 1:5 with linespoints lw 2 pt 5 dt 2 title 'Redis LPUSH'\n") % (
                os.path.join(DOCS, "bench-tiny.png"), dat))

    @staticmethod
    def gnuplot(script):
        subprocess.run(["gnuplot"], input=script, text=True, check=True)

    def render(self):
        self.summarise()
        self.header()
        self.targets_table()
        self.wordcount()
        self.matmul()
        self.tiny()
        self.hol()
        self.memory()
        self.scaling()
        self.tls()
        self.caveats()
        self.profiling()
        self.howto()
        self.plot()
        return "\n".join(self.out).rstrip() + "\n"


def human(n):
    for unit, size in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size and n % size == 0:
            return "%d %s" % (n // size, unit)
    return str(n)


def main(path=None):
    path = path or os.path.join(HERE, "results", "latest.json")
    with open(path) as fh:
        data = json.load(fh)
    text = Report(data).render()
    out = os.path.join(DOCS, "benchmarks.md")
    with open(out, "w") as fh:
        fh.write(text)
    print("report: wrote %s and docs/bench-*.png" % out)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
