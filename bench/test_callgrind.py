"""Unit tests for bench/callgrind.py (no valgrind needed).

Run from the repository root:  python3 -m unittest bench/test_callgrind.py
"""
import contextlib
import io
import os
import re
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import callgrind  # noqa: E402

# Thread 1: name compression (ob/cob, fn/cfn share IDs), relative positions,
# an inlined file (fi=/fe=), a `calls=0` (what a dump after
# `callgrind_control -z` contains for calls active at the reset) and a
# jump/jcnd whose following position-only line carries no cost.
THREAD1 = """\
# callgrind format
version: 1
creator: hand-written
pid: 42
cmd: app
part: 1

desc: Trigger: dump
positions: line
events: Ir Dr
summary: 370

ob=(1) /usr/bin/app
fl=(1) src/main.rs
fn=(1) app::main
10 5 1
+2 7
cfn=(2) app::helper
calls=3 20
* 300 9
-1 8
fi=(2) src/inline.rs
30 4
fe=(1)
cob=(2) /lib/x86_64-linux-gnu/libc.so.6
cfi=(3) malloc.c
cfn=(3) malloc
calls=1 -5
* 50

fn=(2)
20 100
+1 160
cob=(2)
cfi=(3)
cfn=(3)
calls=0 5
* 40
jump=2 +3
*
jcnd=1/4 -2
*

ob=(2)
fl=(3)
fn=(3)
5 90

totals: 374
"""

# Thread 2: `positions: instr line` with hex and relative addresses, its own
# ID tables (ob=(1)/fn=(2) mean something else here), a name starting with
# "(" that is not compressed, and neither summary: nor totals:.
THREAD2 = """\
# callgrind format
version: 1
positions: instr line
events: Ir
ob=(1) /usr/bin/app
fl=(1) ???
fn=(1) (below main)
0x1000 1 10
+4 * 20
cfn=(2) tokio::runtime::park
calls=1 0x2000 5
-4 +1 400
fn=(2)
0x2000 5 399
+1 * 1
"""

APP, LIBC = "/usr/bin/app", "/lib/x86_64-linux-gnu/libc.so.6"


class TempFiles:
    """Write texts to temporary files; remove them on exit."""

    def __init__(self, *texts):
        self.dir = tempfile.TemporaryDirectory()
        self.paths = []
        for i, text in enumerate(texts, 1):
            path = os.path.join(self.dir.name, f"callgrind.out.{i}")
            with open(path, "w") as f:
                f.write(text)
            self.paths.append(path)

    def __enter__(self):
        return self.paths

    def __exit__(self, *exc):
        self.dir.cleanup()


def run(argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = callgrind.main(argv)
    return code, out.getvalue(), err.getvalue()


def parse(*texts):
    profile = callgrind.Profile()
    with TempFiles(*texts) as paths:
        for path in paths:
            callgrind.parse_file(path, profile)
    return profile


class ParseTest(unittest.TestCase):
    def setUp(self):
        self.p = parse(THREAD1, THREAD2)

    def test_total_sums_files(self):
        # 374 (totals: of thread 1) + 430 (sum of thread 2's cost lines)
        self.assertEqual(self.p.total, 804)

    def test_exclusive_excludes_call_cost_lines(self):
        self.assertEqual(self.p.self_ir[(APP, "app::main")], 5 + 7 + 8 + 4)
        self.assertEqual(self.p.self_ir[(APP, "app::helper")], 260)
        self.assertEqual(self.p.self_ir[(LIBC, "malloc")], 90)
        self.assertEqual(self.p.self_ir[(APP, "(below main)")], 30)
        self.assertEqual(self.p.self_ir[(APP, "tokio::runtime::park")], 400)
        self.assertEqual(sum(self.p.self_ir.values()), 804)

    def test_inclusive_adds_call_cost_lines(self):
        self.assertEqual(self.p.inclusive((APP, "app::main")), 24 + 300 + 50)
        self.assertEqual(self.p.inclusive((APP, "app::helper")), 300)  # calls=0
        self.assertEqual(self.p.inclusive((LIBC, "malloc")), 90)
        self.assertEqual(self.p.inclusive((APP, "(below main)")), 430)

    def test_compressed_names_resolved(self):
        names = {fn for _ob, fn in self.p.self_ir}
        self.assertFalse([n for n in names if re.match(r"\(\d+\)", n)], names)


class TotalRuleTest(unittest.TestCase):
    BODY = "events: Ir\nfn=f\n1 10\n2 5\n"

    def test_totals_preferred_over_summary(self):
        p = parse("events: Ir\nsummary: 99\nfn=f\n1 10\ntotals: 12\n")
        self.assertEqual(p.total, 12)

    def test_summary_when_no_totals(self):
        self.assertEqual(parse("events: Ir\nsummary: 99\nfn=f\n1 10\n").total, 99)

    def test_sum_when_neither(self):
        self.assertEqual(parse(self.BODY).total, 15)

    def test_ir_column_chosen(self):
        p = parse("events: Dr Ir\nfn=f\n1 7 10\n+1 4\n")   # missing Ir = 0
        self.assertEqual((p.total, p.self_ir[("???", "f")]), (10, 10))


class CliTest(unittest.TestCase):
    def test_per_request_rounds_half_up(self):
        with TempFiles(THREAD1, THREAD2) as paths:
            code, out, _ = run(paths + ["--requests", "8"])   # 804 / 8 = 100.5
        self.assertEqual((code, out), (0, "101\n"))

    def test_top_table(self):
        with TempFiles(THREAD1, THREAD2) as paths:
            code, out, _ = run(paths + ["--requests", "2", "--top", "2"])
        lines = out.splitlines()
        self.assertEqual((code, lines[0], len(lines)), (0, "402", 4))
        self.assertEqual(lines[2].split()[:2], ["200", "200"])    # park
        self.assertEqual(lines[2].split()[3:], ["app", "tokio::runtime::park"])
        self.assertEqual(lines[3].split()[:2], ["130", "150"])    # helper
        self.assertEqual(lines[3].split()[-1], "app::helper")

    def test_callers(self):
        with TempFiles(THREAD1, THREAD2) as paths:
            code, out, _ = run(paths + ["--requests", "1", "--callers", "^malloc$"])
        lines = out.splitlines()
        self.assertEqual(code, 0)
        # Most first; app::main's call of helper does not match.
        self.assertEqual([line.split() for line in lines[2:]],
                         [["50", "app::main", "->", "malloc"],
                          ["40", "app::helper", "->", "malloc"]])

    def test_areas(self):
        with TempFiles(THREAD1, THREAD2) as paths:
            code, out, _ = run(paths + ["--requests", "1", "--group",
                                        "--area", "tokio=^tokio::",
                                        "--area", "app=^app::",
                                        "--area", "main=main"])
        rows = dict(line.split() for line in out.splitlines()[1:])
        self.assertEqual(code, 0)
        # app::main matches "app" first; "(below main)" falls to "main".
        self.assertEqual(rows, {"tokio": "400", "app": "284",
                                "main": "30", "other": "90"})

    def test_gap_to_a_base(self):
        # THREAD2 as the base: its `(below main)` (30) and park (400) are
        # matched by name in THREAD1 + THREAD2, which adds main, helper
        # and malloc; the widest gap first, the rest summed.
        with TempFiles(THREAD1, THREAD2) as paths, TempFiles(THREAD2) as base:
            code, out, _ = run(paths + ["--requests", "1", "--base", base[0],
                                        "--top", "2"])
        lines = out.splitlines()
        self.assertEqual(code, 0)
        self.assertEqual(lines[0], "804")
        self.assertEqual([line.split() for line in lines[2:]],
                         [["260", "0", "260", "app::helper"],
                          ["90", "0", "90", "malloc"],
                          ["24", "430", "454", "(3", "other", "functions)"]])

    def test_gap_per_area(self):
        with TempFiles(THREAD1, THREAD2) as paths, TempFiles(THREAD2) as base:
            code, out, _ = run(paths + ["--requests", "1", "--base", base[0],
                                        "--top", "1",
                                        "--area", "tokio=^tokio::",
                                        "--area", "app=^app::"])
        rows = {line.split()[0]: line.split()[1:] for line in out.splitlines()[-3:]}
        self.assertEqual(code, 0)
        # The base has no app:: function; "(below main)" (30) and malloc
        # (90) are "other", in the base only the former.
        self.assertEqual(rows, {"tokio": ["0", "400", "400"],
                                "app": ["284", "0", "284"],
                                "other": ["90", "30", "120"]})

    def test_missing_file(self):
        code, out, err = run(["/nonexistent/callgrind.out", "--requests", "1"])
        self.assertEqual((code, out), (2, ""))
        self.assertIn("/nonexistent/callgrind.out", err)
        self.assertNotIn("Traceback", err)

    def test_empty_file(self):
        with TempFiles("") as paths:
            code, out, err = run(paths + ["--requests", "1"])
        self.assertEqual((code, out), (2, ""))
        self.assertIn("empty", err)

    def test_not_callgrind(self):
        with TempFiles("hello\n") as paths:
            code, _, err = run(paths + ["--requests", "1"])
        self.assertEqual(code, 2)
        self.assertIn("not a callgrind file", err)


if __name__ == "__main__":
    unittest.main()
