#!/usr/bin/env python3
"""Host-mode integration tests: the real agent binary over a Unix socket.

Usage: host_test.py PATH_TO_AGENT [--wrapper "valgrind --error-exitcode=1 ..."]
Starts the agent with --listen and --root in a temporary directory, runs every
scenario, shuts the agent down and checks that it exited with status 0.
"""
import json
import select
import os
import shlex
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

HEADER = struct.Struct("<IIBBH")
CONTROL, STDOUT, STDERR, STDIN, STDIN_EOF = 1, 2, 3, 4, 5


class Client:
    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.buf = b""
        self.inbox = {}  # channel -> list of (type, payload)

    def send(self, channel, ftype, payload=b""):
        self.sock.settimeout(None)
        self.sock.sendall(HEADER.pack(len(payload), channel, ftype, 0, 0) + payload)

    def request(self, channel, obj):
        self.send(channel, CONTROL, json.dumps(obj).encode())

    def _read_frame(self, timeout):
        while True:
            if len(self.buf) >= HEADER.size:
                length, channel, ftype, flags, reserved = HEADER.unpack_from(self.buf)
                assert flags == 0 and reserved == 0
                if len(self.buf) >= HEADER.size + length:
                    payload = self.buf[HEADER.size:HEADER.size + length]
                    self.buf = self.buf[HEADER.size + length:]
                    return channel, ftype, payload
            ready, _, _ = select.select([self.sock], [], [], timeout)
            if not ready:
                raise TimeoutError("no frame from the agent")
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise EOFError("agent closed the connection")
            self.buf += chunk

    def wait(self, channel, timeout=10.0):
        """Frames of channel up to and including its terminal control frame."""
        deadline = time.monotonic() + timeout
        while True:
            frames = self.inbox.get(channel, [])
            for i, (ftype, payload) in enumerate(frames):
                if ftype == CONTROL:
                    msg = json.loads(payload)
                    assert msg["type"] in ("result", "exit", "error"), msg
                    del self.inbox[channel]
                    return frames[:i], msg
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no terminal frame on channel {channel}")
            ch, ftype, payload = self._read_frame(left)
            self.inbox.setdefault(ch, []).append((ftype, payload))

    def call(self, channel, obj, timeout=10.0):
        self.request(channel, obj)
        frames, msg = self.wait(channel, timeout)
        out = b"".join(p for t, p in frames if t == STDOUT)
        err = b"".join(p for t, p in frames if t == STDERR)
        for t, p in frames:
            assert t in (STDOUT, STDERR) and len(p) <= 65536, (t, len(p))
        return out, err, msg

    def close(self):
        self.sock.close()


def exec_req(argv, **kw):
    return dict(op="exec", argv=argv, **kw)


def check(cond, what):
    if not cond:
        raise AssertionError(what)
    print(f"  ok  {what}")


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie still "exists"; look at its state
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        # gone between the open and the read (the read then fails with ESRCH)
        return False


def test_basics(c, root):
    _, _, msg = c.call(1, {"op": "hello", "time_ms": int(time.time() * 1000)})
    check(msg["type"] == "result" and msg["protocol"] == 1 and msg["pid1"] is False
          and msg["init_errors"] == [] and isinstance(msg["agent_version"], str),
          f"hello -> {msg}")
    out, err, msg = c.call(1, exec_req(["echo", "hi"]))
    check(out == b"hi\n" and err == b"" and msg["exit_code"] == 0 and msg["signal"] is None
          and msg["stdout_bytes"] == 3 and not msg["timed_out"], f"echo hi -> {msg}")
    out, err, msg = c.call(2, exec_req(["sh", "-c", "echo out; echo err >&2; exit 3"]))
    check(out == b"out\n" and err == b"err\n" and msg["exit_code"] == 3
          and msg["stderr_bytes"] == 4, "sh exit 3 with stdout and stderr")
    out, err, msg = c.call(3, exec_req(["no-such-command-xyz"]))
    check(msg["exit_code"] == 127 and
          err == b"pyro-agent: no-such-command-xyz: No such file or directory\n",
          f"missing command -> 127, stderr {err!r}")
    out, err, msg = c.call(3, exec_req([root]))
    check(msg["exit_code"] == 126 and b"Permission denied" in err, "directory as argv0 -> 126")
    out, err, msg = c.call(4, exec_req(["sh", "-c", "kill -SEGV $$"]))
    check(msg["exit_code"] is None and msg["signal"] == "SEGV", "killed by SEGV -> signal SEGV")
    out, err, msg = c.call(4, exec_req(["sh", "-c", "kill -RTMIN $$"]))
    check(msg["signal"] == "SIG34", f"unnamed signal -> {msg['signal']}")
    out, _, msg = c.call(5, exec_req(["sh", "-c", "echo $FOO:$HOME:$LANG:$TERM:$PATH"],
                                     env={"FOO": "bar", "HOME": "/x"}))
    check(out == b"bar:/x:C.UTF-8:dumb:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:"
          b"/sbin:/bin\n", f"env defaults and overrides -> {out!r}")
    out, _, msg = c.call(5, exec_req(["sh", "-c", "echo $PATH; which-not-there"],
                                     env={"PATH": "/bin"}))
    check(out == b"/bin\n" and msg["exit_code"] == 127, "PATH override used for lookup")
    out, _, msg = c.call(6, exec_req(["cat"]))
    check(out == b"" and msg["exit_code"] == 0, "stdin is /dev/null by default")


def wait_until(pred, timeout=10.0):
    """Polls pred until it holds or timeout passes; the bound is generous because it only
    limits how long a failing run waits, and a loaded 2-core machine must not flake."""
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)
    return True


def pids_in(out):
    return [int(w) for w in out.split()]


def test_limits(c, root):
    t0 = time.monotonic()
    _, _, msg = c.call(7, exec_req(["sleep", "60"], timeout_ms=200), timeout=30)
    elapsed = time.monotonic() - t0
    # Outcome and order: killed, not before its timeout, and long before sleep would end.
    check(msg["timed_out"] and msg["signal"] == "KILL" and msg["exit_code"] is None
          and msg["duration_ms"] >= 200 and elapsed < 30,
          f"timeout 200 ms -> {msg}, {elapsed * 1000:.0f} ms")
    out, _, msg = c.call(8, exec_req(["head", "-c", "5000000", "/dev/zero"],
                                     max_output_bytes=1000))
    check(len(out) == 1000 and msg["stdout_truncated"] and msg["stdout_bytes"] == 5000000
          and not msg["stderr_truncated"], f"max_output_bytes 1000 -> {msg}")
    out, _, msg = c.call(8, exec_req(["head", "-c", "300000", "/dev/zero"]))
    check(len(out) == 300000 and not msg["stdout_truncated"], "300 kB output streamed whole")
    out, _, msg = c.call(8, exec_req(["echo", "x"], max_output_bytes=0))
    check(out == b"" and msg["stdout_truncated"] and msg["stdout_bytes"] == 2,
          "max_output_bytes 0")
    # The exit must not wait for the background child, and the child must be gone: the
    # drain would report the exit anyway, so only its pid proves the group was killed.
    out, _, msg = c.call(9, exec_req(["sh", "-c", "sleep 100 & echo $!"]), timeout=30)
    [child] = pids_in(out)
    check(msg["exit_code"] == 0 and wait_until(lambda: not pid_alive(child)),
          "background child does not hold the exit and is killed with the group")
    marker = os.path.join(root, "late-marker")
    out, _, msg = c.call(9, exec_req(["sh", "-c", f"(sleep 1; touch {marker}) & echo $!"]))
    [child] = pids_in(out)
    wait_until(lambda: not pid_alive(child), timeout=3)
    check(msg["exit_code"] == 0 and not os.path.exists(marker),
          "a background child never gets to write its file after the exit")
    # A child in its own session escapes the group and keeps the output pipe open: the
    # exit comes after the bounded drain, long before the child's 60 s.
    t0 = time.monotonic()
    out, _, msg = c.call(9, exec_req(["sh", "-c", "setsid sleep 60 & echo $!"]), timeout=30)
    [child] = pids_in(out)
    check(msg["exit_code"] == 0 and time.monotonic() - t0 < 30,
          "escaped child holding the pipe: exit after the drain, not after the child")
    os.kill(child, 9)


def test_cwd(c, root):
    os.makedirs(os.path.join(root, "work", "sub"), exist_ok=True)
    out, _, msg = c.call(10, exec_req(["pwd"], cwd="/work/sub"))
    check(out.decode().strip() == os.path.join(os.path.realpath(root), "work", "sub"),
          f"cwd /work/sub remapped under --root -> {out!r}")
    _, _, msg = c.call(10, exec_req(["pwd"], cwd="/missing"))
    check(msg == {"type": "error", "code": "not_found", "message": "cwd /missing does not exist",
                  "errno": 2}, f"missing cwd -> {msg}")
    open(os.path.join(root, "file"), "w").close()
    _, _, msg = c.call(10, exec_req(["pwd"], cwd="/file"))
    check(msg["code"] == "not_found", f"cwd is a file -> {msg['message']}")
    out, _, msg = c.call(10, exec_req(["pwd"]))
    check(out.decode().strip() == os.path.realpath(root), "default cwd is / (the root)")


def test_concurrency(c, root):
    # Each exec marks itself started, then waits until all 8 have started, and prints
    # its start and end stamps. Run one after another, the first would never see the
    # others: every "8" and the stamps (all starts before the first end) show overlap.
    barrier = os.path.join(root, "barrier")
    os.mkdir(barrier)
    script = ('date +%s%N; touch {dir}/$0; n=0; '
              'while [ "$(ls {dir} | wc -l)" -lt 8 ] && [ $n -lt 400 ]; '
              'do sleep 0.05; n=$((n+1)); done; ls {dir} | wc -l; date +%s%N')
    for i in range(8):
        c.request(100 + i, exec_req(["sh", "-c", script.format(dir=barrier), str(i)]))
    results = [c.wait(100 + i, timeout=60) for i in range(8)]
    lines = [b"".join(p for t, p in frames if t == STDOUT).split() for frames, _ in results]
    check(all(msg["exit_code"] == 0 and len(ln) == 3 and ln[1] == b"8"
              for (_, msg), ln in zip(results, lines)), "8 execs each saw all 8 running")
    starts, ends = [int(ln[0]) for ln in lines], [int(ln[2]) for ln in lines]
    check(max(starts) < min(ends), "8 execs overlap: every start precedes every end")
    for i in range(64):
        c.request(200 + i, exec_req(["sh", "-c", f"sleep 0.2; echo {i}; echo e{i} >&2"]))
    results = [c.wait(200 + i, timeout=60) for i in range(64)]
    check(all(msg["exit_code"] == 0 and (STDOUT, f"{i}\n".encode()) in frames
              and (STDERR, f"e{i}\n".encode()) in frames
              for i, (frames, msg) in enumerate(results)), "64 concurrent execs")


def test_stdin(c, root):
    c.request(20, exec_req(["cat"], stdin=True))
    c.send(20, STDIN, b"hello ")
    c.send(20, STDIN, b"world\n")
    c.send(20, STDIN_EOF)
    frames, msg = c.wait(20)
    out = b"".join(p for t, p in frames if t == STDOUT)
    check(out == b"hello world\n" and msg["exit_code"] == 0, "stdin frames + stdin_eof to cat")
    c.request(23, exec_req(["cat"], stdin=True))
    c.send(23, STDIN_EOF)
    frames, msg = c.wait(23)
    check(frames == [] and msg["exit_code"] == 0, "stdin_eof with no data")
    c.request(24, exec_req(["sh", "-c", "read a; echo got $a"], stdin=True, timeout_ms=5000))
    c.send(24, STDIN, b"line\n")
    frames, msg = c.wait(24)
    check(frames == [(STDOUT, b"got line\n")] and msg["exit_code"] == 0,
          "process exits without waiting for stdin_eof")
    c.send(24, STDIN, b"late")  # the channel is finished: dropped
    c.send(24, STDIN_EOF)
    # 4 MiB through cat: the agent must keep draining stdout while stdin is queued.
    # The client sends from a thread, as a real host does, while it reads the output.
    data = bytes(range(256)) * (4 * 4096)
    c.request(21, exec_req(["cat"], stdin=True, max_output_bytes=8 << 20))

    def feed():
        for off in range(0, len(data), 1 << 20):
            c.send(21, STDIN, data[off:off + (1 << 20)])
        c.send(21, STDIN_EOF)

    feeder = threading.Thread(target=feed)
    feeder.start()
    frames, msg = c.wait(21, timeout=30)
    feeder.join()
    out = b"".join(p for t, p in frames if t == STDOUT)
    check(out == data and msg["stdout_bytes"] == len(data), "4 MiB of stdin echoed by cat")
    c.request(22, exec_req(["sh", "-c", "head -c 3 >/dev/null; echo done"], stdin=True))
    c.send(22, STDIN, b"abcdef" * 100000)
    c.send(22, STDIN, b"more after the reader is gone")
    c.send(22, STDIN_EOF)
    frames, msg = c.wait(22)
    check(msg["exit_code"] == 0, "stdin to a process that stopped reading (EPIPE) is dropped")


def test_signal(c, root):
    c.request(30, exec_req(["sleep", "10"]))
    time.sleep(0.1)
    _, _, msg = c.call(31, {"op": "signal", "target_channel": 30, "signal": "TERM"})
    check(msg == {"type": "result"}, "signal op -> result on its own channel")
    frames, msg = c.wait(30)
    check(msg["signal"] == "TERM" and msg["exit_code"] is None, "target exec ends with TERM")
    _, _, msg = c.call(31, {"op": "signal", "target_channel": 30, "signal": "TERM"})
    check(msg["code"] == "not_found", "signal to a finished channel -> not_found")
    c.request(32, exec_req(["sleep", "10"]))
    _, _, msg = c.call(33, {"op": "signal", "target_channel": 32, "signal": "STOP"})
    check(msg["code"] == "invalid_argument", "signal outside the allowlist -> invalid_argument")
    _, _, msg = c.call(33, {"op": "signal", "target_channel": 32, "signal": "KILL"})
    frames, msg = c.wait(32)
    check(msg["signal"] == "KILL", "KILL via signal op")


def test_bad_requests(c, root):
    cases = [
        (b"{not json", "invalid_argument", "malformed JSON"),
        (b"[1,2]", "invalid_argument", "non-object control message"),
        (b'{"op":"fly"}', "unsupported", "unknown op"),
        (b'{"argv":["x"]}', "invalid_argument", "missing op"),
        (b'{"op":"exec","argv":[]}', "invalid_argument", "empty argv"),
        (b'{"op":"exec","argv":["a",1]}', "invalid_argument", "non-string argv"),
        (b'{"op":"exec","argv":["a\\u0000b"]}', "invalid_argument", "NUL in argv"),
        (b'{"op":"exec","argv":["true"],"env":{"A=B":"c"}}', "invalid_argument", "= in env key"),
        (b'{"op":"exec","argv":["true"],"env":{"":"c"}}', "invalid_argument", "empty env key"),
        (b'{"op":"exec","argv":["true"],"env":{"A":1}}', "invalid_argument", "non-string env"),
        (b'{"op":"exec","argv":["true"],"timeout_ms":0}', "invalid_argument", "timeout_ms 0"),
        (b'{"op":"exec","argv":["true"],"timeout_ms":1.5}', "invalid_argument", "timeout_ms 1.5"),
        (b'{"op":"exec","argv":["true"],"max_output_bytes":1073741825}', "invalid_argument",
         "max_output_bytes above 1 GiB"),
        (b'{"op":"exec","argv":["true"],"stdin":1}', "invalid_argument", "non-bool stdin"),
        (b'{"op":"exec","argv":["true"],"cwd":"rel"}', "invalid_argument", "relative cwd"),
        (b'{"op":"exec","argv":["true"],"timeout":5}', "invalid_argument", "unknown field"),
        (b'{"op":"exec","op":"exec","argv":["true"]}', "invalid_argument", "duplicate key"),
        (b'{"op":"hello","hostname":5}', "invalid_argument", "hello bad hostname"),
        (b'{"op":"shutdown","power_off":"yes"}', "invalid_argument", "shutdown bad power_off"),
        (b'{"op":"exec","argv":["' + b"\xff" + b'"]}', "invalid_argument", "invalid UTF-8"),
        (b'{"op":"net_configure","address":"10.0.2.15","prefix_len":24,"gateway":"10.0.2.2",'
         b'"dns":["10.0.2.3"]}', "unsupported", "net_configure in host mode"),
        (b'{"op":"net_configure","address":"10.0.2.256","prefix_len":24,"gateway":"10.0.2.2",'
         b'"dns":[]}', "invalid_argument", "net_configure bad address"),
        (b'{"op":"net_configure","address":"10.0.2.15","prefix_len":31,"gateway":"10.0.2.2",'
         b'"dns":[]}', "invalid_argument", "net_configure prefix_len 31"),
        (b'{"op":"net_configure","address":"10.0.2.15","gateway":"10.0.2.2","dns":[]}',
         "invalid_argument", "net_configure without prefix_len"),
        (b'{"op":"net_configure","address":"10.0.2.15","prefix_len":24,"gateway":"10.0.2.2",'
         b'"dns":["1.1.1.1","1.1.1.2","1.1.1.3","1.1.1.4"]}', "invalid_argument",
         "net_configure 4 resolvers"),
        (b'{"op":"net_configure","address":"10.0.2.15","prefix_len":24,"gateway":"10.0.2.2",'
         b'"dns":[],"iface":"eth1"}', "invalid_argument", "net_configure unknown field"),
        (b"[" * 100 + b"]" * 100, "invalid_argument", "nesting too deep"),
    ]
    for payload, code, what in cases:
        c.send(40, CONTROL, payload)
        _, msg = c.wait(40)
        check(msg["type"] == "error" and msg["code"] == code, f"{what} -> {msg['message']}")
    c.send(40, CONTROL, b"{" + b" " * 70000 + b"}")
    _, msg = c.wait(40)
    check(msg["code"] == "invalid_argument", f"control > 64 KiB -> {msg['message']}")
    c.send(0, CONTROL, b'{"op":"hello"}')
    _, msg = c.wait(0)
    check(msg["code"] == "invalid_argument", "request on channel 0 -> error on channel 0")
    c.send(41, STDIN, b"nobody reads this")
    c.send(41, 99, b"unknown frame type")
    _, _, msg = c.call(41, {"op": "hello"})
    check(msg["type"] == "result", "stray stdin and unknown frame types are dropped")
    big = ["x"] * 4096
    out, _, msg = c.call(42, exec_req(["sh", "-c", 'echo $#', "sh"] + big[:4092]))
    check(msg.get("exit_code") == 0 and out == b"4092\n", f"argv with 4096 entries -> {msg}")
    _, _, msg = c.call(42, exec_req(["true"] + big))
    check(msg["code"] == "invalid_argument", "argv with 4097 entries -> invalid_argument")
    env = {f"V{i}": "v" for i in range(1025)}
    _, _, msg = c.call(42, exec_req(["true"], env=env))
    check(msg["code"] == "invalid_argument", "1025 env entries -> invalid_argument")
    env.pop("V0")
    _, _, msg = c.call(42, exec_req(["true"], env=env))
    check(msg["exit_code"] == 0, "1024 env entries accepted")
    out, _, msg = c.call(43, exec_req(["printf", "%s", "h\u00e9\U0001F600"]))
    check(out == "h\u00e9\U0001F600".encode(), "non-ASCII argv round trip")
    c.send(44, CONTROL, b'{"op":"exec","argv":["printf","%s","\\ud83d\\ude00\\n\\t"]}')
    frames, msg = c.wait(44)
    check(frames == [(STDOUT, "\U0001F600\n\t".encode())], "\\u surrogate pair escapes")


WS = "/workspace"


def file_req(op, path, **kw):
    return dict(op=op, root=WS, path=path, **kw)


def listing(c, ch, path, **kw):
    """file_list -> (entries parsed from the stdout JSON lines, terminal message)."""
    c.request(ch, file_req("file_list", path, **kw))
    frames, msg = c.wait(ch)
    for t, p in frames:
        assert t == STDOUT and p.endswith(b"\n") and len(p) <= 65536, (t, p[-20:])
    lines = b"".join(p for _, p in frames).splitlines()
    return [json.loads(line) for line in lines], msg


def upload(c, ch, path, data, chunk=1 << 20, size=None, **kw):
    """file_write with the content sent as stdin frames, then stdin_eof."""
    c.request(ch, file_req("file_write", path, size_bytes=len(data) if size is None else size,
                           **kw))
    for off in range(0, len(data), chunk):
        c.send(ch, STDIN, data[off:off + chunk])
    c.send(ch, STDIN_EOF)
    frames, msg = c.wait(ch)
    assert frames == [], frames
    return msg


def escapes(msg, path):
    return (msg["type"] == "error" and msg["code"] == "invalid_argument"
            and msg["message"] == f"path {path} escapes {WS}")


def make_workspace(c, root):
    _, _, msg = c.call(50, {"op": "hello", "workspace_root": WS})
    ws = os.path.join(root, "workspace")
    check(msg["type"] == "result" and os.path.isdir(ws)
          and os.stat(ws).st_mode & 0o777 == 0o755, "hello workspace_root creates it (0755)")
    _, _, msg = c.call(50, {"op": "hello", "workspace_root": WS})
    check(msg["type"] == "result", "hello workspace_root that exists already")
    _, _, msg = c.call(50, {"op": "hello", "workspace_root": "/a/../b"})
    check(msg["code"] == "invalid_argument", f"workspace_root with .. -> {msg['message']}")
    outside = os.path.join(root, "outside")
    os.makedirs(os.path.join(ws, "src", "lib"))
    os.makedirs(outside)
    files = {"src/app.py": b"print(1)\n", "src/lib/util.py": b"X = 2\n", "README.md": b"# hi\n",
             "../outside/secret.txt": b"secret\n"}
    for name, data in files.items():
        with open(os.path.join(ws, name), "wb") as f:
            f.write(data)
    links = {"link_in": "src/app.py", "link_dir": "src", "link_out": "../outside",
             "link_abs": "/etc", "chain1": "chain2", "chain2": "chain3",
             "chain3": "src/../../outside/secret.txt", "good1": "good2",
             "good2": "link_dir/lib/../lib/util.py", "src/up": "../README.md"}
    for name, target in links.items():
        os.symlink(target, os.path.join(ws, name))
    os.mkfifo(os.path.join(ws, "pipe"))
    return ws, outside


def test_file_list(c, ws):
    entries, msg = listing(c, 51, ".")
    paths = [e["path"] for e in entries]
    check(paths == ["README.md", "chain1", "chain2", "chain3", "good1", "good2", "link_abs",
                    "link_dir", "link_in", "link_out", "src"]
          and msg == {"type": "result", "path": ".", "count": 11, "truncated": False},
          f"list . (sorted, fifo skipped) -> {paths}")
    by = {e["path"]: e for e in entries}
    check(by["README.md"] == {"path": "README.md", "artifact_type": "file", "size_bytes": 5,
                              "link_target": None}
          and by["src"] == {"path": "src", "artifact_type": "directory", "size_bytes": 0,
                            "link_target": None}
          and by["link_out"] == {"path": "link_out", "artifact_type": "symlink",
                                 "size_bytes": 10, "link_target": "../outside"}
          and by["link_abs"]["link_target"] == "/etc", "entry fields; links shown as links")
    entries, msg = listing(c, 51, ".", recursive=True)
    paths = [e["path"] for e in entries]
    check(paths == sorted(paths) and "src/lib/util.py" in paths and "src/up" in paths
          and not any(p.startswith(("link_dir/", "link_out/")) for p in paths)
          and msg["count"] == len(paths) == 15, f"recursive list, links not descended: {paths}")
    entries, msg = listing(c, 51, "src")
    check([e["path"] for e in entries] == ["src/app.py", "src/lib", "src/up"]
          and msg["path"] == "src", "list src: paths relative to the root")
    entries, msg = listing(c, 51, "/workspace/src/./lib/")
    check([e["path"] for e in entries] == ["src/lib/util.py"] and msg["path"] == "src/lib",
          "absolute path under the root, cleaned")
    entries, msg = listing(c, 51, "src/app.py")
    check(entries == [{"path": "src/app.py", "artifact_type": "file", "size_bytes": 9,
                       "link_target": None}] and msg["count"] == 1, "list a file: one entry")
    entries, msg = listing(c, 51, "link_out")
    check([e["artifact_type"] for e in entries] == ["symlink"], "list a link to outside: "
          "the link itself, not followed")
    entries, msg = listing(c, 51, "link_dir/lib")
    check([e["path"] for e in entries] == ["link_dir/lib/util.py"],
          "a link inside the root is followed on the way")
    entries, msg = listing(c, 51, ".", recursive=True, max_entries=3)
    check(len(entries) == 3 and msg["count"] == 3 and msg["truncated"],
          "max_entries 3 -> 3 entries, truncated")
    os.makedirs(os.path.join(ws, "many"))
    for i in range(3000):
        open(os.path.join(ws, "many", f"file-{i:05}-{'x' * 40}"), "w").close()
    entries, msg = listing(c, 51, "many", max_entries=100000)
    check(len(entries) == 3000 and msg["count"] == 3000 and not msg["truncated"],
          "3000 entries streamed in several frames (over 64 KiB of JSON)")
    _, msg = listing(c, 51, "missing")
    check(msg["code"] == "not_found", f"list missing -> {msg['message']}")
    _, msg = listing(c, 51, "link_out/secret.txt")
    check(escapes(msg, "link_out/secret.txt"), f"list through a link out -> {msg['message']}")
    _, msg = listing(c, 51, ".", max_entries=100001)
    check(msg["code"] == "invalid_argument", "max_entries above 100000 -> invalid_argument")


def test_file_read(c, ws):
    out, _, msg = c.call(52, file_req("file_read", "src/app.py"))
    check(out == b"print(1)\n" and msg == {"type": "result", "path": "src/app.py",
                                           "size_bytes": 9, "truncated": False},
          f"read a file -> {msg}")
    out, _, msg = c.call(52, file_req("file_read", "src/app.py", max_bytes=3))
    check(out == b"pri" and msg["size_bytes"] == 9 and msg["truncated"],
          "max_bytes 3 -> 3 bytes, truncated, full size_bytes")
    big = os.urandom(300000)
    with open(os.path.join(ws, "big.bin"), "wb") as f:
        f.write(big)
    out, _, msg = c.call(52, file_req("file_read", "big.bin", max_bytes=16 << 20))
    check(out == big and not msg["truncated"], "300 kB binary file read whole")
    out, _, msg = c.call(52, file_req("file_read", "link_in"))
    check(out == b"print(1)\n", "read through a link inside the root")
    out, _, msg = c.call(52, file_req("file_read", "good1"))
    check(out == b"X = 2\n", "read through a chain of links that stays inside")
    _, _, msg = c.call(52, file_req("file_read", "nope.txt"))
    check(msg["code"] == "not_found" and msg["errno"] == 2, f"missing -> {msg['message']}")
    _, _, msg = c.call(52, file_req("file_read", "src"))
    check(msg["code"] == "invalid_argument" and msg["message"] == "path src is a directory",
          f"directory -> {msg['message']}")
    _, _, msg = c.call(52, file_req("file_read", "pipe"))
    check(msg["code"] == "invalid_argument", f"fifo -> {msg['message']} (and no hang)")
    for path in ("../outside/secret.txt", "/etc/passwd", "/workspace/../outside/secret.txt",
                 "src/../../outside/secret.txt", "link_out/secret.txt", "link_abs/passwd",
                 "chain1", "/workspacex/y"):
        out, _, msg = c.call(52, file_req("file_read", path))
        check(out == b"" and escapes(msg, path), f"read {path} -> {msg['message']}")
    for bad in (0, (16 << 20) + 1, "1"):
        _, _, msg = c.call(52, file_req("file_read", "src/app.py", max_bytes=bad))
        check(msg["code"] == "invalid_argument", f"max_bytes {bad!r} -> invalid_argument")


def no_temp_files(d):
    return not [n for n in os.listdir(d) if ".pyro-" in n]


def test_file_write(c, ws, outside):
    msg = upload(c, 53, "notes/deep/a.txt", b"hello", create_parents=True)
    target = os.path.join(ws, "notes", "deep", "a.txt")
    check(msg == {"type": "result", "path": "notes/deep/a.txt", "bytes_written": 5}
          and open(target, "rb").read() == b"hello"
          and os.stat(target).st_mode & 0o777 == 0o644, "new file with parents, mode 0644")
    ino = os.stat(target).st_ino
    msg = upload(c, 53, "notes/deep/a.txt", b"second version", mode=0o600)
    check(msg["bytes_written"] == 14 and open(target, "rb").read() == b"second version"
          and os.stat(target).st_ino != ino and os.stat(target).st_mode & 0o777 == 0o600
          and no_temp_files(os.path.dirname(target)),
          "overwrite: renamed over (new inode), mode 0600, no temporary file left")
    upload(c, 53, "notes/deep/a.txt", b"third")
    check(os.stat(target).st_mode & 0o777 == 0o600, "overwrite without mode keeps the mode")
    msg = upload(c, 53, "notes/deep/a.txt", b"short", size=10)
    check(msg["code"] == "invalid_argument" and open(target, "rb").read() == b"third"
          and no_temp_files(os.path.dirname(target)),
          f"fewer bytes than size_bytes -> {msg['message']}; old file intact")
    msg = upload(c, 53, "notes/deep/a.txt", b"much too long", size=4, chunk=3)
    check(msg["code"] == "invalid_argument" and open(target, "rb").read() == b"third",
          f"more bytes than size_bytes -> {msg['message']}; old file intact")
    msg = upload(c, 53, "empty.txt", b"")
    check(msg["bytes_written"] == 0 and os.path.getsize(os.path.join(ws, "empty.txt")) == 0,
          "size_bytes 0: an empty file")
    data = os.urandom(3 << 20)
    msg = upload(c, 53, "/workspace/blob.bin", data, chunk=700000)
    check(msg["path"] == "blob.bin" and open(os.path.join(ws, "blob.bin"), "rb").read() == data,
          "3 MiB in 700 kB stdin frames, absolute path under the root")
    msg = upload(c, 53, "link_in", b"via link\n")
    check(msg["type"] == "result" and os.path.islink(os.path.join(ws, "link_in"))
          and open(os.path.join(ws, "src", "app.py"), "rb").read() == b"via link\n",
          "write through a link inside the root replaces its target, keeps the link")
    msg = upload(c, 53, "nodir/x.txt", b"x")
    check(msg["code"] == "not_found" and not os.path.exists(os.path.join(ws, "nodir")),
          f"missing parent without create_parents -> {msg['message']}")
    msg = upload(c, 53, "src", b"x")
    check(msg["code"] == "invalid_argument" and os.path.isdir(os.path.join(ws, "src")),
          f"target is a directory -> {msg['message']}")
    secret = os.path.join(outside, "secret.txt")
    for path in ("../x.txt", "/etc/x.txt", "link_out/secret.txt", "chain1", "link_out",
                 "link_out/new/f.txt", "link_abs/x"):
        msg = upload(c, 53, path, b"pwned", create_parents=True)
        check(escapes(msg, path), f"write {path} -> {msg['message']}")
    check(open(secret, "rb").read() == b"secret\n" and os.listdir(outside) == ["secret.txt"]
          and not os.path.exists(os.path.join(ws, "..", "x.txt")), "nothing written outside")
    os.symlink("../outside/new.txt", os.path.join(ws, "dangling_out"))
    msg = upload(c, 53, "dangling_out", b"pwned")
    check(escapes(msg, "dangling_out") and os.listdir(outside) == ["secret.txt"],
          "dangling link out of the root refused")
    c.request(54, file_req("file_write", "held.txt", size_bytes=2))
    c.request(54, {"op": "hello"})  # the channel is busy: dropped, no second terminal frame
    c.send(54, STDIN, b"ok")
    c.send(54, STDIN_EOF)
    frames, msg = c.wait(54)
    _, _, after = c.call(55, {"op": "hello"})
    check(msg["bytes_written"] == 2 and frames == [] and 54 not in c.inbox
          and after["type"] == "result", "a request on a channel with a pending write is dropped")
    for bad in ({"size_bytes": (16 << 20) + 1}, {"size_bytes": -1}, {}, {"size_bytes": 1,
                "mode": 0o10000}, {"size_bytes": 1, "create_parents": 1},
                {"size_bytes": 1, "extra": 1}):
        _, _, msg = c.call(56, file_req("file_write", "x.txt", **bad))
        check(msg["code"] == "invalid_argument", f"file_write {bad} -> {msg['message']}")


def test_file_delete_mkdir(c, ws, outside):
    _, _, msg = c.call(57, file_req("mkdir", "a/b/c"))
    check(msg == {"type": "result", "path": "a/b/c"} and os.path.isdir(os.path.join(ws, "a/b/c")),
          "mkdir -p a/b/c")
    _, _, msg = c.call(57, file_req("mkdir", "a/b/c"))
    check(msg["type"] == "result", "mkdir of an existing directory")
    _, _, msg = c.call(57, file_req("mkdir", "link_dir/made"))
    check(msg["type"] == "result" and os.path.isdir(os.path.join(ws, "src", "made")),
          "mkdir through a link inside the root")
    _, _, msg = c.call(57, file_req("mkdir", "README.md/x"))
    check(msg["code"] == "invalid_argument", f"mkdir under a file -> {msg['message']}")
    for path in ("link_out/x", "../y", "/tmp/y", "link_abs/y"):
        _, _, msg = c.call(57, file_req("mkdir", path))
        check(escapes(msg, path), f"mkdir {path} -> {msg['message']}")
    check(os.listdir(outside) == ["secret.txt"], "mkdir made nothing outside")
    _, _, msg = c.call(58, file_req("file_delete", "README.md"))
    check(msg == {"type": "result", "path": "README.md", "deleted": True}
          and not os.path.exists(os.path.join(ws, "README.md")), "delete a file")
    _, _, msg = c.call(58, file_req("file_delete", "link_dir"))
    check(msg["deleted"] and not os.path.lexists(os.path.join(ws, "link_dir"))
          and os.path.isdir(os.path.join(ws, "src")), "delete a link to a directory: the link")
    _, _, msg = c.call(58, file_req("file_delete", "link_out"))
    check(msg["deleted"] and os.path.isdir(outside), "delete a link out of the root: the link")
    os.symlink("../outside", os.path.join(ws, "a", "out"))
    _, _, msg = c.call(58, file_req("file_delete", "a"))
    check(msg["code"] == "invalid_argument" and os.path.isdir(os.path.join(ws, "a")),
          f"non-empty directory without recursive -> {msg['message']}")
    _, _, msg = c.call(58, file_req("file_delete", "a", recursive=True))
    check(msg["deleted"] and not os.path.exists(os.path.join(ws, "a"))
          and os.listdir(outside) == ["secret.txt"],
          "recursive delete does not follow a link out of the root")
    _, _, msg = c.call(58, file_req("file_delete", "a"))
    check(msg["code"] == "not_found", "delete missing -> not_found")
    _, _, msg = c.call(58, file_req("file_delete", "."))
    check(msg["code"] == "invalid_argument", f"delete the root -> {msg['message']}")
    for path in ("../outside/secret.txt", "chain3/x", "/workspace/../outside"):
        _, _, msg = c.call(58, file_req("file_delete", path, recursive=True))
        check(escapes(msg, path), f"delete {path} -> {msg['message']}")
    check(os.listdir(outside) == ["secret.txt"], "delete removed nothing outside")


def test_file_requests(c, root):
    cases = [
        ({"op": "file_read", "path": "x"}, "invalid_argument", "missing root"),
        ({"op": "file_read", "root": "workspace", "path": "x"}, "invalid_argument",
         "relative root"),
        ({"op": "file_read", "root": "/workspace/../etc", "path": "x"}, "invalid_argument",
         "root with .."),
        ({"op": "file_read", "root": WS}, "invalid_argument", "missing path"),
        ({"op": "file_read", "root": WS, "path": ""}, "invalid_argument", "empty path"),
        ({"op": "file_read", "root": WS, "path": "a\u0000b"}, "invalid_argument", "NUL in path"),
        ({"op": "file_list", "root": "/nope", "path": "."}, "not_found", "missing root"),
        ({"op": "mkdir", "root": WS, "path": "x", "mode": 1}, "invalid_argument",
         "unknown field"),
    ]
    for req, code, what in cases:
        _, _, msg = c.call(59, req)
        check(msg["type"] == "error" and msg["code"] == code, f"{what} -> {msg['message']}")


def test_file_write_disconnect(path, ws):
    c = Client(path)
    c.request(1, file_req("file_write", "gone.txt", size_bytes=10))
    c.send(1, STDIN, b"12345")
    c.close()
    c = Client(path)
    _, _, msg = c.call(1, {"op": "hello"})
    check(msg["type"] == "result" and not os.path.exists(os.path.join(ws, "gone.txt")),
          "client gone mid-upload: nothing written")
    c.close()


def test_files(c, root):
    ws, outside = make_workspace(c, root)
    test_file_list(c, ws)
    test_file_read(c, ws)
    test_file_write(c, ws, outside)
    test_file_delete_mkdir(c, ws, outside)
    test_file_requests(c, root)


def test_connection_drops(path, root):
    c = Client(path)
    pidfile = os.path.join(root, "pid")
    c.request(1, exec_req(["sh", "-c", f"echo $$ > {pidfile}; exec sleep 100"]))
    wait_until(lambda: os.path.exists(pidfile) and open(pidfile).read().strip())
    pid = int(open(pidfile).read())
    c.close()
    check(wait_until(lambda: not pid_alive(pid)), "client disconnect kills its running execs")
    c = Client(path)
    c.send(1, CONTROL, b"")  # empty control: error, connection stays
    _, msg = c.wait(1)
    check(msg["code"] == "invalid_argument", "empty control payload -> invalid_argument")
    c.sock.sendall(HEADER.pack(1048577, 5, CONTROL, 0, 0))
    try:
        c._read_frame(5)
        dropped = False
    except (EOFError, ConnectionResetError):
        dropped = True
    check(dropped, "payload_len above 1 MiB -> connection dropped")
    c.close()
    c = Client(path)
    _, _, msg = c.call(1, {"op": "hello"})
    check(msg["type"] == "result", "next client accepted after a drop")
    c.close()


def test_sigterm(agent, wrapper, tmp):
    path = os.path.join(tmp, "term.sock")
    proc = subprocess.Popen(wrapper + [agent, "--listen", path])
    try:
        for _ in range(500):
            if os.path.exists(path):
                break
            time.sleep(0.02)
        c = Client(path)
        pidfile = os.path.join(tmp, "term.pid")
        c.request(1, exec_req(["sh", "-c", f"echo $$ > {pidfile}; exec sleep 100"]))
        wait_until(lambda: os.path.exists(pidfile) and open(pidfile).read().strip())
        pid = int(open(pidfile).read())
        proc.terminate()
        rc = proc.wait(timeout=30)
        check(rc == 0 and wait_until(lambda: not pid_alive(pid)) and not os.path.exists(path),
              "SIGTERM: agent exits 0, kills its execs, removes the socket")
        c.close()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def main():
    agent = os.path.abspath(sys.argv[1])
    wrapper = []
    if len(sys.argv) > 3 and sys.argv[2] == "--wrapper":
        wrapper = shlex.split(sys.argv[3])
    with tempfile.TemporaryDirectory() as tmp:
        root = os.path.join(tmp, "root")
        os.mkdir(root)
        path = os.path.join(tmp, "agent.sock")
        proc = subprocess.Popen(wrapper + [agent, "--listen", path, "--root", root])
        try:
            for _ in range(500):
                if os.path.exists(path):
                    break
                time.sleep(0.02)
            c = Client(path)
            for test in (test_basics, test_limits, test_cwd, test_concurrency, test_stdin,
                         test_signal, test_bad_requests, test_files):
                print(test.__name__)
                test(c, root)
            c.close()
            print("test_connection_drops")
            test_connection_drops(path, root)
            test_file_write_disconnect(path, os.path.join(root, "workspace"))
            c = Client(path)
            _, _, msg = c.call(1, {"op": "shutdown"})
            check(msg == {"type": "result"}, "shutdown -> result")
            rc = proc.wait(timeout=30)
            check(rc == 0, f"agent exited with status {rc} after shutdown")
            check(not os.path.exists(path), "socket path removed on exit")
            print("test_sigterm")
            test_sigterm(agent, wrapper, tmp)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    print("all host-mode tests passed")


if __name__ == "__main__":
    main()
