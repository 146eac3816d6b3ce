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
    except FileNotFoundError:
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


def test_limits(c, root):
    t0 = time.monotonic()
    _, _, msg = c.call(7, exec_req(["sleep", "5"], timeout_ms=200))
    elapsed = time.monotonic() - t0
    check(msg["timed_out"] and msg["signal"] == "KILL" and msg["exit_code"] is None
          and elapsed < 0.4 and 190 <= msg["duration_ms"] < 400,
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
    t0 = time.monotonic()
    out, _, msg = c.call(9, exec_req(["sh", "-c", "sleep 100 & echo started"]))
    check(out == b"started\n" and msg["exit_code"] == 0 and time.monotonic() - t0 < 1,
          "background child does not hold the exit (group killed, drain bounded)")
    t0 = time.monotonic()
    out, _, msg = c.call(9, exec_req(["sh", "-c", "setsid sleep 3 & echo escaped"]))
    check(msg["exit_code"] == 0 and time.monotonic() - t0 < 1,
          "escaped child holding the pipe: exit after the 100 ms drain")


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
    t0 = time.monotonic()
    for i in range(8):
        c.request(100 + i, exec_req(["sh", "-c", f"sleep 0.3; echo {i}"]))
    results = [c.wait(100 + i) for i in range(8)]
    ok = all(frames == [(STDOUT, f"{i}\n".encode())] and msg["exit_code"] == 0
             for i, (frames, msg) in enumerate(results))
    check(ok and time.monotonic() - t0 < 1.5, f"8 concurrent execs in "
          f"{(time.monotonic() - t0) * 1000:.0f} ms")
    for i in range(64):
        c.request(200 + i, exec_req(["sh", "-c", f"sleep 0.2; echo {i}; echo e{i} >&2"]))
    results = [c.wait(200 + i) for i in range(64)]
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
        (b'{"op":"fly"}', "invalid_argument", "unknown op"),
        (b'{"argv":["x"]}', "invalid_argument", "missing op"),
        (b'{"op":"exec","argv":[]}', "invalid_argument", "empty argv"),
        (b'{"op":"exec","argv":["a",1]}', "invalid_argument", "non-string argv"),
        (b'{"op":"exec","argv":["a\\u0000b"]}', "invalid_argument", "NUL in argv"),
        (b'{"op":"exec","argv":["true"],"env":{"A=B":"c"}}', "invalid_argument", "= in env key"),
        (b'{"op":"exec","argv":["true"],"env":{"":"c"}}', "invalid_argument", "empty env key"),
        (b'{"op":"exec","argv":["true"],"env":{"A":1}}', "invalid_argument", "non-string env"),
        (b'{"op":"exec","argv":["true"],"timeout_ms":0}', "invalid_argument", "timeout_ms 0"),
        (b'{"op":"exec","argv":["true"],"timeout_ms":1.5}', "invalid_argument", "timeout_ms 1.5"),
        (b'{"op":"exec","argv":["true"],"max_output_bytes":67108865}', "invalid_argument",
         "max_output_bytes above 64 MiB"),
        (b'{"op":"exec","argv":["true"],"stdin":1}', "invalid_argument", "non-bool stdin"),
        (b'{"op":"exec","argv":["true"],"cwd":"rel"}', "invalid_argument", "relative cwd"),
        (b'{"op":"exec","argv":["true"],"timeout":5}', "invalid_argument", "unknown field"),
        (b'{"op":"exec","op":"exec","argv":["true"]}', "invalid_argument", "duplicate key"),
        (b'{"op":"hello","hostname":5}', "invalid_argument", "hello bad hostname"),
        (b'{"op":"shutdown","power_off":"yes"}', "invalid_argument", "shutdown bad power_off"),
        (b'{"op":"exec","argv":["' + b"\xff" + b'"]}', "invalid_argument", "invalid UTF-8"),
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


def test_connection_drops(path, root):
    c = Client(path)
    pidfile = os.path.join(root, "pid")
    c.request(1, exec_req(["sh", "-c", f"echo $$ > {pidfile}; exec sleep 100"]))
    for _ in range(100):
        if os.path.exists(pidfile) and open(pidfile).read().strip():
            break
        time.sleep(0.02)
    pid = int(open(pidfile).read())
    c.close()
    for _ in range(100):
        if not pid_alive(pid):
            break
        time.sleep(0.02)
    check(not pid_alive(pid), "client disconnect kills its running execs")
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
        for _ in range(100):
            if os.path.exists(pidfile) and open(pidfile).read().strip():
                break
            time.sleep(0.02)
        pid = int(open(pidfile).read())
        proc.terminate()
        rc = proc.wait(timeout=30)
        for _ in range(100):
            if not pid_alive(pid):
                break
            time.sleep(0.02)
        check(rc == 0 and not pid_alive(pid) and not os.path.exists(path),
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
                         test_signal, test_bad_requests):
                print(test.__name__)
                test(c, root)
            c.close()
            print("test_connection_drops")
            test_connection_drops(path, root)
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
