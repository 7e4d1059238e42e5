# SPDX-License-Identifier: MIT
"""mypy --strict on user code written against docs/python.md
(tests/python/typing_check/user_code.py). scripts/deps.sh installs Debian's
python3-mypy; the skip is only for a machine set up without it."""
import importlib.util
import os
import subprocess
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))


@unittest.skipUnless(importlib.util.find_spec("mypy"), "mypy is not installed")
class TestTyping(unittest.TestCase):
    def test_user_code_passes_mypy_strict(self):
        r = subprocess.run([sys.executable, "-m", "mypy", "--strict", "--no-incremental",
                            "--cache-dir", os.devnull,
                            os.path.join(HERE, "typing_check", "user_code.py")],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=300)
        self.assertEqual(r.returncode, 0, r.stdout.decode(errors="replace"))


class TestUserCodeRuns(unittest.TestCase):
    def test_user_code_runs(self):
        r = subprocess.run([sys.executable, os.path.join(HERE, "typing_check", "user_code.py")],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout.decode(errors="replace"))
        self.assertIn(b"Hello world!", r.stdout)
