#!/usr/bin/env python3
"""Instruction counts per request from raw callgrind output files.

Why this exists: the benchmark README quotes "instructions per request" and
where they go (hyper, tokio, keystone_proxy, ...).  The dumps come from
`callgrind_control -z` followed by `callgrind_control -d` around a batch of
requests, and valgrind 3.19's callgrind_annotate misattributes such a dump:
calls that were already active when the counters were zeroed are written as
`calls=0 ...`, and callgrind_annotate then adds the inclusive cost line that
follows to the caller's *self* cost (so `(below main)` and friends appear to
execute everything).  This script reads the format itself (stdlib only).

Usage:
  callgrind.py FILE [FILE...] --requests N
      prints one integer: total Ir / N, rounded (half up).
  callgrind.py FILE... --requests N --top K
      same first line, then the K functions with the highest self Ir per
      request, with their inclusive Ir per request and object basename.
  callgrind.py FILE... --requests N --group --area LABEL=REGEX [--area ...]
      same first line, then self Ir per request summed per area: a function
      goes to the first area whose REGEX matches (re.search) its name,
      otherwise to "other".  --area implies --group.
  callgrind.py FILE... --requests N --callers REGEX
      same first line, then, for the functions whose name matches REGEX,
      the callers that spend most in them: the inclusive Ir per request of
      those calls (where a `memcpy` or a hash comes from).
  callgrind.py FILE... --requests N --base BASEFILE [--base ...] [--top K]
      same first line, then the gap per function: each function's self Ir
      per request in FILE... minus its self Ir per request in BASEFILE...
      (measured over the same N requests), the K widest gaps first
      (default 40; no --top table then), then what the rows left out add
      up to.  Functions are matched by name alone: the two programs are
      different objects.  With --area, each area's gap follows (label,
      gap, base, this), a function going to an area as without --base.

Several files (one per thread/part: out.1, out.2, out-01, ...) are summed.
A file's total is its `totals:` line, else its `summary:` line, else the sum
of its cost lines.  Only the Ir event is used (else the first event).

Approximation: a function's inclusive cost is its self cost plus the cost
lines that follow its `calls=` lines.  A recursive call (direct or mutual)
adds the callee's inclusive cost again, so a recursive function's inclusive
figure is overstated (it can exceed the total); non-recursive ones are exact.
Functions are identified by (object, name); source files (fl=/fi=/fe=) are
ignored, so code inlined from other files stays with its function.
"""
import argparse
import os
import re
import sys
from collections import defaultdict

SPEC_RE = re.compile(r"(c?ob|fl|fi|fe|c?fn|cfi|cfl|jfi|jfn)=\s*(.*)$")
NAME_RE = re.compile(r"\((\d+)\)(?:\s+(.*))?$")
HEADER_RE = re.compile(r"([a-z]+):\s*(.*)$")
NAMESPACE = {"ob": "ob", "cob": "ob", "fn": "fn", "cfn": "fn", "jfn": "fn"}


class Usage(Exception):
    """A user-facing error: printed on stderr, exit code 2."""


class Profile:
    """Costs (first event, normally Ir) aggregated over one or more files."""

    def __init__(self):
        self.total = 0
        self.self_ir = defaultdict(int)   # (ob, fn) -> exclusive Ir
        self.call_ir = defaultdict(int)   # (ob, fn) -> Ir of its calls
        self.edge_ir = defaultdict(int)   # (caller fn, callee fn) -> Ir

    def inclusive(self, key):
        return self.self_ir.get(key, 0) + self.call_ir.get(key, 0)


class FileParser:
    """State for parsing one callgrind file into a Profile."""

    def __init__(self, profile):
        self.p = profile
        self.names = {"ob": {}, "fl": {}, "fn": {}}
        self.npos, self.event = 1, 0      # positions: line / events: Ir
        self.ob, self.fn = "???", "???"
        self.cfn = "???"                  # the callee of the next calls=
        self.pending = None               # "call" / "jump": next line special
        self.totals, self.summary, self.cost_sum = [], [], 0
        self.seen_events = False

    def name(self, kind, value):
        """Resolve `(ID) name` / `(ID)` / `name` in kind's namespace."""
        table = self.names[NAMESPACE.get(kind, "fl")]
        m = NAME_RE.match(value)
        if not m:
            return value
        if m.group(2) is not None:
            table[m.group(1)] = m.group(2)
        return table.get(m.group(1), value)

    def header(self, key, value):
        if key == "positions":
            self.npos = len(value.split()) or 1
        elif key == "events":
            events = value.split()
            self.event = events.index("Ir") if "Ir" in events else 0
            self.seen_events = True
        elif key in ("totals", "summary"):
            getattr(self, key).append(self.ir_of(value.split()))

    def ir_of(self, costs):
        if len(costs) <= self.event:
            return 0
        tok = costs[self.event]
        return int(tok, 16) if tok.startswith("0x") else int(tok)

    def cost_line(self, line):
        ir = self.ir_of(line.split()[self.npos:])
        key = (self.ob, self.fn)
        if self.pending == "call":        # inclusive cost of that call
            self.p.call_ir[key] += ir
            self.p.edge_ir[(self.fn, self.cfn)] += ir
        elif self.pending is None:
            self.p.self_ir[key] += ir
            self.cost_sum += ir
        self.pending = None               # after jump=: source position only

    def spec(self, kind, value):
        resolved = self.name(kind, value)
        if kind == "ob":
            self.ob = resolved
        elif kind == "fn":
            self.fn = resolved
        elif kind == "cfn":
            self.cfn = resolved

    def line(self, line):
        if not line or line[0] == "#":
            return
        if line[0] in "0123456789+-*":
            return self.cost_line(line)
        if line.startswith("calls="):
            self.pending = "call"
        elif line.startswith(("jump=", "jcnd=")):
            self.pending = "jump"
        elif m := SPEC_RE.match(line):
            self.spec(m.group(1), m.group(2))
        elif m := HEADER_RE.match(line):
            self.header(m.group(1), m.group(2))

    def file_total(self):
        if self.totals:
            return sum(self.totals)
        return sum(self.summary) if self.summary else self.cost_sum


def parse_file(path, profile):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            fp, nlines = FileParser(profile), 0
            for nlines, raw in enumerate(f, 1):
                fp.line(raw.strip())
    except OSError as e:
        raise Usage(f"{path}: cannot read: {e.strerror}") from None
    except ValueError:
        raise Usage(f"{path}:{nlines}: malformed line: {raw.strip()[:80]!r}") from None
    if nlines == 0:
        raise Usage(f"{path}: file is empty (dump not written yet? with"
                    " --separate-threads=yes the base file stays empty)")
    if not fp.seen_events:
        raise Usage(f"{path}: not a callgrind file (no 'events:' line)")
    profile.total += fp.file_total()
    if fp.totals and sum(fp.totals) != fp.cost_sum:
        print(f"warning: {path}: totals {sum(fp.totals)} != sum of self costs"
              f" {fp.cost_sum}", file=sys.stderr)


def per_request(value, n):
    return (2 * value + n) // (2 * n)     # round half up, integers only


def print_top(profile, n, k):
    print(f"{'self/req':>12} {'incl/req':>12} {'self%':>6}  {'object':<24} function")
    ranked = sorted(profile.self_ir, key=lambda key: -profile.self_ir[key])
    for key in ranked[:k]:
        pct = 100.0 * profile.self_ir[key] / profile.total if profile.total else 0.0
        print(f"{per_request(profile.self_ir[key], n):>12} "
              f"{per_request(profile.inclusive(key), n):>12} {pct:>6.2f}  "
              f"{os.path.basename(key[0]):<24} {key[1]}")


def print_callers(profile, n, regex, k):
    """The callers spending most in functions matching regex."""
    edges = [(ir, caller, callee) for (caller, callee), ir in profile.edge_ir.items()
             if regex.search(callee)]
    print(f"{'calls/req':>12}  caller -> callee")
    for ir, caller, callee in sorted(edges, reverse=True)[:k]:
        print(f"{per_request(ir, n):>12}  {caller} -> {callee}")


def self_by_name(profile):
    """Self Ir per function name, whatever object it is in."""
    sums = defaultdict(int)
    for (_ob, fn), ir in profile.self_ir.items():
        sums[fn] += ir
    return sums


def print_gap(profile, base, n, k):
    """Per function: self Ir per request here minus in `base`."""
    here, there = self_by_name(profile), self_by_name(base)
    rows = [(per_request(here.get(fn, 0), n) - per_request(there.get(fn, 0), n),
             per_request(there.get(fn, 0), n), per_request(here.get(fn, 0), n), fn)
            for fn in set(here) | set(there)]
    rows.sort(key=lambda row: (-abs(row[0]), row[3]))
    print(f"{'gap/req':>9} {'base/req':>9} {'this/req':>9}  function")
    for gap, was, now, fn in rows[:k]:
        print(f"{gap:>9} {was:>9} {now:>9}  {fn}")
    rest = rows[k:]
    print(f"{sum(r[0] for r in rest):>9} {sum(r[1] for r in rest):>9} "
          f"{sum(r[2] for r in rest):>9}  ({len(rest)} other functions)")


def group(profile, areas):
    """Self Ir per area label (first matching regex wins, else 'other')."""
    sums = {label: 0 for label, _ in areas}
    sums["other"] = sums.get("other", 0)
    for (_ob, fn), ir in profile.self_ir.items():
        label = next((lb for lb, rx in areas if rx.search(fn)), "other")
        sums[label] += ir
    return sums


def parse_area(text):
    label, sep, regex = text.partition("=")
    if not sep or not label:
        raise Usage(f"--area {text!r}: expected LABEL=REGEX")
    try:
        return label, re.compile(regex)
    except re.error as e:
        raise Usage(f"--area {text!r}: bad regex: {e}") from None


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="+", metavar="FILE")
    ap.add_argument("--requests", type=int, required=True, metavar="N")
    ap.add_argument("--top", type=int, default=0, metavar="K")
    ap.add_argument("--group", action="store_true")
    ap.add_argument("--area", action="append", default=[], metavar="LABEL=REGEX")
    ap.add_argument("--callers", metavar="REGEX")
    ap.add_argument("--base", action="append", default=[], metavar="BASEFILE")
    args = ap.parse_args(argv)
    try:
        if args.requests <= 0:
            raise Usage("--requests must be a positive integer")
        areas = [parse_area(a) for a in args.area]
        callers = parse_area(f"callers={args.callers}")[1] if args.callers else None
        if args.group and not areas:
            raise Usage("--group needs at least one --area LABEL=REGEX")
        profile = Profile()
        for path in args.files:
            parse_file(path, profile)
        base = Profile()
        for path in args.base:
            parse_file(path, base)
    except Usage as e:
        print(f"callgrind.py: error: {e}", file=sys.stderr)
        return 2
    print(per_request(profile.total, args.requests))
    if args.top > 0 and not args.base:
        print_top(profile, args.requests, args.top)
    if callers:
        print_callers(profile, args.requests, callers, args.top or 30)
    if args.base:
        print_gap(profile, base, args.requests, args.top or 40)
    if areas and args.base:
        here, there = group(profile, areas), group(base, areas)
        for label in here:
            was = per_request(there[label], args.requests)
            now = per_request(here[label], args.requests)
            print(f"{label:<24} {now - was:>9} {was:>9} {now:>9}")
    elif areas:
        for label, ir in group(profile, areas).items():
            print(f"{label:<24} {per_request(ir, args.requests):>12}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BrokenPipeError:
        # The reader has what it wanted (`| head`): end quietly.
        sys.stderr.close()
        sys.exit(0)
