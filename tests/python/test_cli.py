# SPDX-License-Identifier: MIT
"""The command-line pieces: `python -m lightws.echo` (server and client
modes, the same contract as build/lightws-echo) and
examples/demo_client.py as `make demo` runs it."""

import os
import socket
import subprocess
import sys
import unittest

import lightws

from _helpers import ECHO_BIN, ROOT, Proc, need_file

DEMO = os.path.join(ROOT, "examples", "demo_client.py")


class TestEchoModule(unittest.TestCase):
    def test_server_prints_listening_line_and_echoes_fragments(self):
        srv = Proc([sys.executable, "-m", "lightws.echo", "--host", "127.0.0.1", "--port", "0"])
        try:
            with lightws.connect(f"ws://127.0.0.1:{srv.port}/cli", timeout=10) as ws:
                big = os.urandom(300000)      # streamed back chunk by chunk
                ws.send(big)
                self.assertEqual(ws.recv(), big)
                ws.send_fragments(["a", "b", "c"])
                self.assertEqual(ws.recv(), "abc")
                # several connections at once (one thread each)
                others = [lightws.connect(f"ws://127.0.0.1:{srv.port}/{i}", timeout=10)
                          for i in range(3)]
                for i, o in enumerate(others):
                    o.send(f"conn {i}")
                for i, o in enumerate(others):
                    self.assertEqual(o.recv(), f"conn {i}")
                    o.close()
        finally:
            srv.stop()

    def test_client_mode_exits_zero_when_the_server_closes(self):
        srv = socket.create_server(("127.0.0.1", 0))
        port = srv.getsockname()[1]
        p = subprocess.Popen([sys.executable, "-m", "lightws.echo", "--client",
                              f"ws://127.0.0.1:{port}/x?y=z"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            srv.settimeout(10)
            conn, _ = srv.accept()
            ws = lightws.accept(conn, timeout=10)
            self.assertEqual(ws.path, "/x?y=z")
            for msg in ["one", b"two", "x" * 100000]:
                ws.send(msg)
                self.assertEqual(ws.recv(), msg)
            ws.close()
            _, err = p.communicate(timeout=10)
            self.assertEqual(p.returncode, 0, err)
        finally:
            srv.close()
            if p.poll() is None:
                p.kill()
                p.communicate()

    def test_client_mode_fails_without_server(self):
        srv = socket.create_server(("127.0.0.1", 0))
        port = srv.getsockname()[1]
        srv.close()
        r = subprocess.run([sys.executable, "-m", "lightws.echo", "--client",
                            f"ws://127.0.0.1:{port}/"], capture_output=True, text=True, timeout=20)
        self.assertEqual(r.returncode, 1)
        self.assertIn("lightws.echo", r.stderr)


class TestDemoClient(unittest.TestCase):
    def run_demo(self, server_argv):
        srv = Proc(server_argv)
        try:
            r = subprocess.run([sys.executable, DEMO, f"ws://127.0.0.1:{srv.port}/demo"],
                               capture_output=True, text=True, timeout=30)
        finally:
            srv.stop()
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = r.stdout.splitlines()
        self.assertEqual(len(lines), 5, r.stdout)
        self.assertEqual(lines[0], "python client: text 'hello' echoed")
        self.assertTrue(all(l.startswith("python client: ") for l in lines))
        self.assertRegex(lines[-1], r"closed with 1000 \(server answered 1000\)")

    def test_demo_against_c_echo(self):
        need_file(ECHO_BIN)
        self.run_demo([ECHO_BIN, "--host", "127.0.0.1", "--port", "0"])

    def test_demo_against_python_echo(self):
        self.run_demo([sys.executable, "-m", "lightws.echo", "--port", "0"])


if __name__ == "__main__":
    unittest.main()
