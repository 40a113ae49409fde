"""Helpers for the Python compatibility suite: the server process, a TCP proxy that can cut
clients off, a raw ZooKeeper session (for what kazoo hides), zkCli, and waiting.

With several members (COMPAT_MEMBERS), a session reads from the member it is connected to,
which may not yet have applied what another session just wrote: ZooKeeper promises each
session its own order, not read-after-write across sessions. So a test that reads what
another session wrote syncs first (`client.sync(path)`, `RawSession.sync`, or
`sync_members` for a reader that cannot, such as one zkCli command), as a correct ZooKeeper
application must."""

import base64
import hashlib
import os
import queue
import random
import re
import select
import signal
import socket
import struct
import subprocess
import threading
import time

from kazoo.client import KazooClient
from kazoo.protocol.serialization import Connect, Create, Ping, Sync
from kazoo.retry import KazooRetry
from kazoo.security import OPEN_ACL_UNSAFE

START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0


def _die_with_parent():
    """In the child before exec: SIGTERM it if the test process dies without stopping it."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:
        pass


MEMBERS = int(os.environ.get("COMPAT_MEMBERS", "1"))

# A super user, as `superDigest` names it: `super:` and the base64 of the SHA-1 of `user:password`.
SUPER = "super:reconfigure"
SUPER_DIGEST = "super:" + base64.b64encode(hashlib.sha1(SUPER.encode()).digest()).decode()


# Where _free_port_block starts looking.
_LOWEST_PROBED_PORT = 10000


def _ephemeral_ports_from():
    """The first port of the kernel's ephemeral range (Linux's default when unreadable)."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _free_port_block(n):
    """The first of `n` consecutive ports that were all free on every address a moment ago,
    chosen below the kernel's range of ephemeral ports: a port there is never handed to an
    outgoing connection (such as one member dialling another) between the probe and the
    member's bind, which a CI run lost a member to."""
    below = _ephemeral_ports_from()
    while True:
        first = random.randrange(_LOWEST_PROBED_PORT, below - n)
        held = []
        try:
            for port in range(first, first + n):
                s = socket.socket()
                held.append(s)
                s.bind(("0.0.0.0", port))
            return first
        except OSError:
            continue
        finally:
            for s in held:
                s.close()


def _local_command(binary, settings=()):
    """`ensemble local` for the suite's ensemble size (COMPAT_MEMBERS, default 1): one member
    on any free port, or N members on consecutive free ports, the client connecting to all;
    each of `settings` (zoo.cfg `key=value`) passed with `--set`."""
    extra = [arg for setting in settings for arg in ("--set", setting)]
    if MEMBERS == 1:
        return [binary, "local", "--members", "1", "--client-port", "0"] + extra
    # One block for both: two blocks probed one after the other can overlap, since the
    # first is free again once probed.
    block = _free_port_block(2 * MEMBERS)
    return [
        binary, "local", "--members", str(MEMBERS),
        "--client-port", str(block),
        "--peer-port", str(block + MEMBERS),
    ] + extra


class Server:
    """One `$ENSEMBLE_BIN local` process (see `_local_command`). The first stdout line is the
    connection string; stderr goes to a log file; stdout after the first line is drained into
    the same file so the process never blocks on a full pipe. `host` and `port` are the first
    member's, for tests that speak to one member (four-letter words, raw sockets)."""

    def __init__(self, binary, log_path, settings=()):
        self.binary = binary
        self.log_path = log_path
        self.settings = list(settings)
        self.proc = None
        self.address = None

    def start(self):
        self._log = open(self.log_path, "ab", buffering=0)
        env = dict(os.environ)
        # openraft at debug logs every heartbeat: enough to slow elections on a busy machine.
        env.setdefault("RUST_LOG", "debug,openraft=warn")
        env.setdefault("NO_COLOR", "1")
        self.proc = subprocess.Popen(
            _local_command(self.binary, self.settings),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._log,
            start_new_session=True,
            env=env,
            preexec_fn=_die_with_parent,
        )
        first = queue.Queue()

        def pump():
            line = self.proc.stdout.readline()
            first.put(line)
            for rest in iter(lambda: self.proc.stdout.readline(), b""):
                self._log.write(b"[stdout] " + rest)

        threading.Thread(target=pump, daemon=True).start()
        try:
            line = first.get(timeout=START_TIMEOUT)
        except queue.Empty:
            self.stop()
            raise RuntimeError(
                "server printed no address within %ss; log:\n%s" % (START_TIMEOUT, self.log_tail())
            )
        address = line.decode().strip()
        if not address:
            code = self.proc.wait(timeout=STOP_TIMEOUT)
            raise RuntimeError("server exited (%s) before printing its address; log:\n%s" % (code, self.log_tail()))
        self.address = address
        host, port = address.split(",")[0].rsplit(":", 1)
        self.host, self.port = host, int(port)
        return self

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self._log.write(b"[compat] server ignored SIGTERM for %ds; killing it\n" % STOP_TIMEOUT)
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._log.close()

    def log_size(self):
        try:
            return os.path.getsize(self.log_path)
        except OSError:
            return 0

    def log_since(self, offset, limit=20000):
        """The log from byte `offset` on (its last `limit` bytes), without colour codes."""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(offset)
                data = f.read()
        except OSError:
            return "(no log)"
        text = data[-limit:].decode(errors="replace")
        return re.sub(r"\x1b\[[0-9;]*m", "", text)

    def log_tail(self, limit=20000):
        return self.log_since(0, limit)


def wait_until(predicate, timeout=10.0, interval=0.02, message="condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %.1fs waiting for %s" % (timeout, message))
        time.sleep(interval)


def fast_retry():
    """Reconnect quickly (kazoo's default backoff grows to many seconds)."""
    return KazooRetry(max_tries=-1, delay=0.05, backoff=1.5, max_delay=0.5, max_jitter=0.05)


def make_client(hosts, timeout=10.0, **kwargs):
    kwargs.setdefault("connection_retry", fast_retry())
    return KazooClient(hosts=hosts, timeout=timeout, **kwargs)


class TcpProxy:
    """A loopback TCP proxy in front of the server. `drop()` cuts every connection (both
    directions) but lets clients reconnect; `block()` cuts them and refuses new ones until
    `unblock()` (the server sees closed sockets, the client sees a dead server)."""

    def __init__(self, target_host, target_port):
        self.target = (target_host, target_port)
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.address = "127.0.0.1:%d" % self.port
        self.blocked = False
        self.accepted = 0
        self._conns = []
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept_loop, daemon=True).start()

    def _accept_loop(self):
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.blocked:
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self.accepted += 1
                self._conns.append((client, upstream))
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()

    def _pump(self, a, b):
        socks = [a, b]
        try:
            while True:
                readable, _, _ = select.select(socks, [], [], 0.5)
                if self._closed:
                    return
                for s in readable:
                    data = s.recv(65536)
                    if not data:
                        return
                    (b if s is a else a).sendall(data)
        except (OSError, ValueError):
            return
        finally:
            for s in socks:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()

    def drop(self):
        with self._lock:
            conns, self._conns = self._conns, []
        for pair in conns:
            for s in pair:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def block(self):
        self.blocked = True
        self.drop()

    def unblock(self):
        self.blocked = False

    def close(self):
        self._closed = True
        self.drop()
        self.listener.close()


class RawSession:
    """A ZooKeeper session over a bare socket, speaking the wire protocol directly: it sends
    only what the test asks for (in particular no pings), which kazoo cannot be made to do."""

    def __init__(self, host, port, timeout_ms, session_id=0, passwd=b"\x00" * 16):
        self.sock = socket.create_connection((host, port), timeout=10)
        body = Connect(0, 0, timeout_ms, session_id, passwd, False).serialize()
        self.sock.sendall(struct.pack("!i", len(body)) + body)
        frame = self.read_frame()
        result, _ = Connect.deserialize(frame, 0)
        self.negotiated_timeout = result.time_out
        self.session_id = result.session_id
        self.passwd = result.passwd
        self.xid = 0
        self.pending_events = []

    def read_frame(self):
        header = self._read_exact(4)
        (length,) = struct.unpack("!i", header)
        return self._read_exact(length)

    def _read_exact(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("server closed the connection")
            buf += chunk
        return buf

    def send(self, req, xid):
        """Sends one request with the given xid and does not wait for the reply."""
        body = struct.pack("!ii", xid, req.type) + req.serialize()
        self.sock.sendall(struct.pack("!i", len(body)) + body)

    def receive(self, timeout=5.0):
        """The next frame: ("event", type, path) for a watch event, ("reply", xid, err, zxid)
        otherwise; None if nothing arrives within `timeout`."""
        self.sock.settimeout(timeout)
        try:
            frame = self.read_frame()
        except socket.timeout:
            return None
        xid, zxid, err = struct.unpack_from("!iqi", frame, 0)
        if xid == -1:
            return ("event",) + self._decode_event(frame)
        return ("reply", xid, err, zxid)

    def request(self, req):
        """Sends one request; returns (zxid, err) of its reply, skipping watch events."""
        self.xid += 1
        body = struct.pack("!ii", self.xid, req.type) + req.serialize()
        self.sock.sendall(struct.pack("!i", len(body)) + body)
        while True:
            frame = self.read_frame()
            xid, zxid, err = struct.unpack_from("!iqi", frame, 0)
            if xid == self.xid:
                return zxid, err

    def sync(self, path="/"):
        """ZooKeeper's sync: once it returns, this session's member has applied every write
        acknowledged before the call (watch events arriving meanwhile are dropped)."""
        _, err = self.request(Sync(path))
        assert err == 0, "sync failed with error %d" % err

    def create_ephemeral(self, path, data=b""):
        return self.request(Create(path, data, OPEN_ACL_UNSAFE, 1))

    def set_watches(self, relative_zxid, data=(), exist=(), child=()):
        """Sends SetWatches (opcode 101, xid -8, as the Java client does on reconnect);
        returns the reply's error code."""
        body = struct.pack("!iiq", -8, 101, relative_zxid)
        for paths in (data, exist, child):
            body += struct.pack("!i", len(paths))
            for p in paths:
                encoded = p.encode()
                body += struct.pack("!i", len(encoded)) + encoded
        self.sock.sendall(struct.pack("!i", len(body)) + body)
        while True:
            frame = self.read_frame()
            xid, _, err = struct.unpack_from("!iqi", frame, 0)
            if xid == -8:
                return err
            if xid == -1:
                self.pending_events.append(self._decode_event(frame))

    @staticmethod
    def _decode_event(frame):
        etype, _state, plen = struct.unpack_from("!iii", frame, 16)
        return etype, frame[28:28 + plen].decode()

    def read_event(self):
        """The next watch event (type number, path), in arrival order."""
        if self.pending_events:
            return self.pending_events.pop(0)
        while True:
            frame = self.read_frame()
            xid = struct.unpack_from("!i", frame, 0)[0]
            if xid == -1:
                return self._decode_event(frame)

    def ping(self):
        body = struct.pack("!ii", -2, Ping.type)
        self.sock.sendall(struct.pack("!i", len(body)) + body)
        frame = self.read_frame()
        return struct.unpack_from("!iqi", frame, 0)

    def wait_closed_by_server(self, timeout):
        """True if the server closes the socket within `timeout` seconds."""
        self.sock.settimeout(timeout)
        try:
            while True:
                if not self.sock.recv(4096):
                    return True
        except socket.timeout:
            return False
        except OSError:
            return True

    def close(self):
        self.sock.close()


def member_addresses(server):
    """Every member's (host, port), from the connection string."""
    return [(h, int(p)) for h, p in (a.rsplit(":", 1) for a in server.address.split(","))]


def sync_members(server, path="/", members=None):
    """Syncs each member (every one, or those of `members`, as (host, port)) through a
    client connected to it alone: afterwards any session on them, even one that cannot sync
    itself (a zkCli command, a four-letter word), sees every write acknowledged before."""
    for host, port in members or member_addresses(server):
        client = make_client("%s:%d" % (host, port))
        client.start(timeout=15)
        try:
            client.sync(path)
        finally:
            client.stop()
            client.close()


def four_letter_word(server, word, timeout=5, member=None):
    """Sends a four-letter word to the first member's client port (or to `member`, a
    (host, port)); returns the whole text reply."""
    with socket.create_connection(member or (server.host, server.port), timeout=timeout) as s:
        s.sendall(word.encode())
        reply = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return reply.decode(errors="replace")
            reply += chunk


def zkcli(server, *args, stdin=None, timeout=60):
    """Runs Debian's zkCli.sh against `server`; returns (exit code, output without the JVM's
    SLF4J noise). With `stdin`, the commands are piped in one per line."""
    home = os.environ.get("ZOOKEEPER_HOME", "/usr/share/zookeeper")
    cmd = [os.path.join(home, "bin", "zkCli.sh"), "-server", server.address] + list(args)
    proc = subprocess.run(
        cmd,
        input=(stdin.encode() if stdin is not None else None),
        stdin=(subprocess.DEVNULL if stdin is None else None),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        timeout=timeout,
    )
    lines = [
        l
        for l in proc.stdout.decode(errors="replace").splitlines()
        if not l.startswith("SLF4J:")
    ]
    return proc.returncode, "\n".join(lines)
