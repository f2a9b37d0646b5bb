"""The guides name real things: every file, function, test, option and link they mention exists.

docs/tutorial.md and docs/architecture.md walk through the code by name ("`server/connection.cpp:
serve`", "`Timeouts.AClientThatResetsMidRequestIsForgottenAtOnce`", "`--request-timeout`"). Code
moves; this test fails the moment a name the guides use is no longer in the tree, and says where.

Usage: python3 docs_references_test.py SOURCE_DIR
"""

import pathlib
import re
import sys
import unittest

ROOT = pathlib.Path(sys.argv.pop(1) if len(sys.argv) > 1 else ".").resolve()
GUIDES = ["docs/tutorial.md", "docs/architecture.md"]

# Where a name may live: the project's own code, then the libraries the guides explain.
CODE_DIRS = ["server", "protocol", "client", "tests", "bench", "scripts", "docs/examples"]
CODE_SUFFIXES = {".cpp", ".hpp", ".h", ".py", ".sh", ".lua", ".cmake", ".txt", ".js", ".toml"}
LIBRARY_DIRS = [pathlib.Path("/usr/include/asio"), pathlib.Path("/usr/include/asio.hpp")]

# A path in the tree: starts with a top-level directory of the project.
TOP_LEVEL = ("server/", "protocol/", "client/", "tests/", "docs/", "scripts/", "bench/", ".ci/")
PATH = re.compile(r"^(?:%s)[\w./+-]*$" % "|".join(re.escape(t) for t in TOP_LEVEL))
# `file: Name::function`, the guides' way to point into a file.
FILE_AND_NAME = re.compile(r"^([\w./-]+\.\w+): ([\w:~]+)(?:\(\))?$")
# A GoogleTest name, `Suite.Test` (a trailing * matches a prefix).
TEST_NAME = re.compile(r"^([A-Z]\w*)\.([A-Z]\w+)(\*?)$")
# A qualified C++ name, or one that can only be code (snake_case with an underscore, kConstant).
QUALIFIED = re.compile(r"^(?:[A-Za-z_]\w*::)+~?[A-Za-z_]\w*(?:\(\))?$")
CODE_WORD = re.compile(r"^(?:k[A-Z]\w+|[a-z]+_\w+|[A-Z][a-z]+[A-Z]\w*)(?:\(\))?$")
# A command-line option of mrd, mrctl or mrd-web.
OPTION = re.compile(r"^(--[a-z][a-z0-9-]+)(?:[ =].*)?$")
# A Markdown link to another page of docs/ (and its section).
LINK = re.compile(r"\]\(([\w.-]+\.md)?(#[\w-]+)?\)")
# Names that are not ours and not in the library headers searched below.
FOREIGN = ("std::", "asio::", "cereal::", "CLI::", "httplib::", "nlohmann::", "testing::")


def strip_fenced_blocks(text):
    """The prose only: inside ``` blocks are shell sessions and their output, checked elsewhere."""
    return re.sub(r"^```.*?^```$", "", text, flags=re.S | re.M)


def backticked(text):
    return re.findall(r"`([^`\n]+)`", strip_fenced_blocks(text))


def code_files():
    for top in CODE_DIRS:
        for path in (ROOT / top).rglob("*"):
            if path.is_file() and (path.suffix in CODE_SUFFIXES or path.name == "CMakeLists.txt"):
                yield path


class Corpus:
    """Every word of the project's code, read once, and a slower look into library headers."""

    def __init__(self):
        self.words = set()
        self.options = set()
        self.targets = set()
        self.file_words = []
        for path in code_files():
            text = path.read_text(errors="replace")
            self.file_words.append(set(re.findall(r"[A-Za-z_]\w*", text)))
            self.words |= self.file_words[-1]
            self.options.update(re.findall(r"--[a-z][a-z0-9-]+", text))
            self.targets.update(re.findall(r"add_executable\((\w[\w-]*)", text))
        self._library_words = None

    def library_words(self):
        if self._library_words is None:
            self._library_words = set()
            for base in LIBRARY_DIRS:
                files = base.rglob("*.hpp") if base.is_dir() else [base] if base.exists() else []
                for path in files:
                    self._library_words.update(
                        re.findall(r"[A-Za-z_]\w*", path.read_text(errors="replace")))
        return self._library_words

    def together(self, first, second):
        if any(first in words and second in words for words in self.file_words):
            return True
        # A library name (`asio::this_coro::cancellation_state`): its headers are one corpus.
        return first in self.library_words() and second in self.library_words()

    def has(self, word):
        return word in self.words or word in self.library_words()


def test_definitions():
    """`Suite.Name` of every TEST, TEST_F and TEST_P in tests/."""
    names = set()
    for path in (ROOT / "tests").rglob("*.cpp"):
        for suite, name in re.findall(r"\bTEST(?:_F|_P)?\(\s*(\w+),\s*(\w+)\)",
                                      path.read_text(errors="replace")):
            names.add((suite, name))
    return names


def slug(heading):
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(page):
    text = strip_fenced_blocks((ROOT / "docs" / page).read_text())
    return {slug(h) for h in re.findall(r"^#+ (.*)$", text, flags=re.M)}


class GuidesNameRealThings(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.corpus = Corpus()
        cls.tests = test_definitions()

    def check_guide(self, guide):
        text = (ROOT / guide).read_text()
        missing = []
        for token in dict.fromkeys(backticked(text)):
            token = token.strip()
            problem = self.problem_with(token)
            if problem:
                missing.append(f"`{token}`: {problem}")
        for page, anchor in LINK.findall(strip_fenced_blocks(text)):
            target = page or pathlib.Path(guide).name
            if not (ROOT / "docs" / target).exists():
                missing.append(f"link to {target}: no such page in docs/")
            elif anchor and anchor[1:] not in anchors(target):
                missing.append(f"link to {target}{anchor}: no such section")
        self.assertEqual(missing, [], f"{guide} names things that are not in the tree:\n  " +
                         "\n  ".join(missing))

    def problem_with(self, token):
        if m := FILE_AND_NAME.match(token):
            path, name = m.groups()
            file = self.find_file(path)
            if file is None:
                return "no such file"
            words = set(re.findall(r"[A-Za-z_]\w*", file.read_text(errors="replace")))
            absent = [part for part in name.split("::") if part and part.lstrip("~") not in words]
            return f"{', '.join(absent)} not in {path}" if absent else None
        if PATH.match(token):
            if (ROOT / token.rstrip("/")).exists() or pathlib.Path(token).name in self.corpus.targets:
                return None
            return "no such file or directory (nor a program CMake builds)"
        if m := TEST_NAME.match(token):
            suite, name, prefix = m.groups()
            found = any(s == suite and (n == name or (prefix and n.startswith(name)))
                        for s, n in self.tests)
            # Not every Suite.Name is a test (`Opcode.kHello` is not): only a known suite counts.
            if found or suite not in {s for s, _ in self.tests}:
                return None
            return "no such test"
        if token.startswith(FOREIGN):
            return None
        if QUALIFIED.match(token) or CODE_WORD.match(token):
            parts = [p.lstrip("~") for p in token.removesuffix("()").split("::") if p]
            absent = [p for p in parts if not self.corpus.has(p)]
            if absent:
                return f"{', '.join(absent)} not in the code"
            # `Class::member`: one file of ours (or of the library) must name both.
            if len(parts) > 1 and not self.corpus.together(parts[-2], parts[-1]):
                return f"no file names both {parts[-2]} and {parts[-1]}"
            return None
        if m := OPTION.match(token):
            return None if m.group(1) in self.corpus.options else "no such option in the code"
        return None

    def find_file(self, path):
        """`server/x.cpp`, or a bare `x.cpp` that the surrounding text has placed: one must exist."""
        if (ROOT / path).is_file():
            return ROOT / path
        matches = [f for f in code_files() if f.name == path]
        return matches[0] if len(matches) == 1 else None

    def check_diagrams(self, guide):
        """Mermaid ends a statement at `;`: one inside a message or a note breaks the diagram."""
        text = (ROOT / guide).read_text()
        broken = []
        for block in re.findall(r"^```mermaid\n(.*?)^```$", text, flags=re.S | re.M):
            broken += [line.strip() for line in block.splitlines() if ";" in line]
        self.assertEqual(broken, [], f"{guide}: a ';' in a Mermaid diagram ends its line early")

    def test_diagrams(self):
        for guide in GUIDES:
            self.check_diagrams(guide)

    def test_tutorial(self):
        self.check_guide("docs/tutorial.md")

    def test_architecture(self):
        self.check_guide("docs/architecture.md")


if __name__ == "__main__":
    unittest.main()
