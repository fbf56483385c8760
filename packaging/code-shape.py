#!/usr/bin/env python3
"""Lists the Rust functions and files that are longer than issue 19 allows.

    packaging/code-shape.py            product code: src/ of the six crates
    packaging/code-shape.py --all      also tests/, benches/, tools/ and fuzz/
    packaging/code-shape.py --check    exit 1 if a function has no reason or a file is too long

Rules (issue 19, "code a newcomer can change"):

* a function over 80 lines (from its `fn` line to its closing brace) needs a reason written in
  the comment block directly above it: a line containing "Long because", "Long on purpose" or
  "Why this is long" (any case);
* a source file over 700 lines, not counting its `#[cfg(test)]` modules, should be split.

What counts: `#[cfg(test)]` items (inline test modules and `#[cfg(test)] mod x;` files) are not
product code and are left out by default; `--all` counts them and the integration tests too. The
scanner masks comments, strings and character literals before it matches braces, so a `{` in a
string or a comment does not confuse it. Trait method declarations without a body are skipped;
a nested function is reported on its own and also counts towards the function around it.
"""

import argparse
import os
import re
import sys

CRATES = ["emo-api-types", "emo-ffmpeg", "emo-inference", "emo-capture", "emod", "emo-tui"]
FN_LIMIT = 80
FILE_LIMIT = 700
REASON = re.compile(r"long because|long on purpose|why this is long", re.IGNORECASE)


def mask(src):
    """`src` with comments, strings and char literals replaced by spaces (newlines kept)."""
    out = list(src)
    i, n = 0, len(src)

    def blank(a, b):
        for k in range(a, b):
            if out[k] != "\n":
                out[k] = " "

    def ident(k):
        return k >= 0 and (src[k].isalnum() or src[k] == "_")

    while i < n:
        c = src[i]
        if src.startswith("//", i):
            j = src.find("\n", i)
            j = n if j < 0 else j
            blank(i, j)
            i = j
        elif src.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if src.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif src.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            blank(i, j)
            i = j
        elif c in "rb" and not ident(i - 1) and re.match(r"(br|r)#*\"", src[i:i + 260]):
            m = re.match(r"(br|r)(#*)\"", src[i:])
            close = '"' + m.group(2)
            j = src.find(close, i + len(m.group(0)))
            j = n if j < 0 else j + len(close)
            blank(i, j)
            i = j
        elif c == '"':
            j = i + 1
            while j < n and src[j] != '"':
                j += 2 if src[j] == "\\" else 1
            blank(i, j + 1)
            i = j + 1
        elif c == "'":
            # A char literal ('x', '\n', '\u{1F600}') or a lifetime ('a, 'static).
            if i + 1 < n and src[i + 1] == "\\":
                j = src.find("'", i + 2)
                blank(i, j + 1)
                i = j + 1
            elif i + 2 < n and src[i + 2] == "'":
                blank(i, i + 3)
                i += 3
            else:
                i += 1
        else:
            i += 1
    return "".join(out)


def block_end(text, open_at):
    """Index of the brace closing the one at `open_at`."""
    depth = 0
    for k in range(open_at, len(text)):
        if text[k] == "{":
            depth += 1
        elif text[k] == "}":
            depth -= 1
            if depth == 0:
                return k
    return len(text) - 1


def line_of(starts, pos):
    lo, hi = 0, len(starts)
    while lo + 1 < hi:
        mid = (lo + hi) // 2
        if starts[mid] <= pos:
            lo = mid
        else:
            hi = mid
    return lo + 1


CFG_TEST = re.compile(r"#\[cfg\(test\)\]\s*(?:#\[[^\]]*\]\s*)*(?:pub(?:\([^)]*\))?\s+)?mod\s+(\w+)\s*([{;])")
FN = re.compile(r"\bfn\s+(\w+)")


def scan(path, text):
    """(test-only module files declared here, [(start, end) test line ranges], [functions])."""
    masked = mask(text)
    starts = [0] + [m.end() for m in re.finditer("\n", masked)]
    test_files, test_ranges = [], []
    for m in CFG_TEST.finditer(masked):
        if m.group(2) == "{":
            end = block_end(masked, m.end() - 1)
            test_ranges.append((line_of(starts, m.start()), line_of(starts, end)))
        else:
            test_files.append(m.group(1))
    fns = []
    for m in FN.finditer(masked):
        # The body opens at the first `{` outside parentheses; a `;` first is a declaration.
        depth, k = 0, m.end()
        while k < len(masked):
            ch = masked[k]
            if ch in "([":
                depth += 1
            elif ch in ")]":
                depth -= 1
            elif depth == 0 and ch in "{;":
                break
            k += 1
        if k >= len(masked) or masked[k] == ";":
            continue
        first, last = line_of(starts, m.start()), line_of(starts, block_end(masked, k))
        fns.append((m.group(1), first, last))
    return test_files, test_ranges, fns


def has_reason(lines, fn_line):
    """A comment line saying why, in the block of comments and attributes directly above."""
    k = fn_line - 2
    while k >= 0:
        s = lines[k].strip()
        if s.startswith("//"):
            if REASON.search(s):
                return True
        elif not s.startswith("#["):
            return False
        k -= 1
    return False


def rust_files(root, all_code):
    dirs = []
    for crate in CRATES:
        dirs.append(os.path.join(crate, "src"))
        if all_code:
            dirs += [os.path.join(crate, d) for d in ("tests", "benches", "tools")]
    if all_code:
        dirs += ["tests", "fuzz"]
    for d in dirs:
        for base, subdirs, files in os.walk(os.path.join(root, d)):
            subdirs[:] = sorted(s for s in subdirs if s not in ("target", "corpus", "artifacts"))
            for f in sorted(files):
                if f.endswith(".rs"):
                    yield os.path.relpath(os.path.join(base, f), root)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--all", action="store_true", help="count test code too")
    ap.add_argument("--check", action="store_true", help="exit 1 when something is over a limit")
    ap.add_argument("--root", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    args = ap.parse_args()
    root = os.path.normpath(args.root)

    files = list(rust_files(root, args.all))
    texts = {f: open(os.path.join(root, f), encoding="utf-8").read() for f in files}
    scanned = {f: scan(f, t) for f, t in texts.items()}
    test_only = set()
    for f, (test_files, _, _) in scanned.items():
        here = os.path.dirname(f)
        stem = os.path.splitext(os.path.basename(f))[0]
        # `mod x;` in a.rs or in mod.rs/lib.rs/main.rs names a/x.rs or x.rs (or x/mod.rs).
        parent = here if stem in ("mod", "lib", "main") else os.path.join(here, stem)
        for name in test_files:
            test_only.add(os.path.join(parent, name + ".rs"))
            test_only.add(os.path.join(parent, name, "mod.rs"))

    long_fns, long_files = [], []
    for f in files:
        if f in test_only and not args.all:
            continue
        test_files, test_ranges, fns = scanned[f]
        lines = texts[f].split("\n")
        def in_tests(line):
            return any(a <= line <= b for a, b in test_ranges)
        counted = len(lines) - (1 if lines and lines[-1] == "" else 0)
        if not args.all:
            counted -= sum(b - a + 1 for a, b in test_ranges)
        if counted > FILE_LIMIT:
            long_files.append((counted, f))
        for name, first, last in fns:
            if not args.all and in_tests(first):
                continue
            size = last - first + 1
            if size > FN_LIMIT:
                long_fns.append((size, f, first, name, has_reason(lines, first)))

    scope = "all Rust code" if args.all else "product code (src/ of the six crates, #[cfg(test)] left out)"
    print(f"scope: {scope}")
    print(f"functions over {FN_LIMIT} lines: {len(long_fns)} ({sum(1 for x in long_fns if x[4])} with a reason above)")
    for size, f, first, name, reason in sorted(long_fns, reverse=True):
        print(f"  {size:4d}  {f}:{first}  {name}  {'reason given' if reason else 'NO REASON'}")
    print(f"files over {FILE_LIMIT} lines{'' if args.all else ' (test modules not counted)'}: {len(long_files)}")
    for counted, f in sorted(long_files, reverse=True):
        print(f"  {counted:4d}  {f}")
    unexplained = [x for x in long_fns if not x[4]]
    return 1 if args.check and (unexplained or long_files) else 0


if __name__ == "__main__":
    sys.exit(main())
