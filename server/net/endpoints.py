"""Endpoints, loopback checks, binding and CURVE keys (pyzmq's ``zmq.auth``), in one place.

Every socket we bind goes through ``bind``: loopback (tcp on 127.0.0.0/8 or ::1, ipc, inproc) without
keys; anything else only with keys, and then as a CURVE server whose clients must be authorized.
ipc endpoints of ours live in folders made by ``tempfile.mkdtemp`` (0700 whatever the umask), so other
users cannot reach them.
``arena keys`` writes the secret keys 0600 in a 0700 folder and never replaces keys without being told.
"""
from __future__ import annotations

import contextlib
import ipaddress
import os
import shutil
import stat
from pathlib import Path
from urllib.parse import urlsplit

import zmq
import zmq.auth


class EndpointError(ValueError):
    pass


def is_loopback(endpoint: str) -> bool:
    """ipc:// and inproc:// are local; tcp:// is local only on 127.0.0.0/8, ::1 or localhost."""
    if endpoint.startswith(("ipc://", "inproc://")):
        return True
    if not endpoint.startswith("tcp://"):
        raise EndpointError(f"endpoint {endpoint!r} must start with tcp://, ipc:// or inproc://")
    host = urlsplit(endpoint).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def on_this_host(endpoint: str) -> bool:
    """Whether ``endpoint`` is an address of this host: ipc, loopback, a wildcard, or one of this host's own
    interface addresses (a process that binds or reaches it may share memory with us; the shared-memory
    handshake still proves it). Sends nothing: it only tries to bind a UDP socket to that address."""
    import socket

    if is_loopback(endpoint):
        return True
    host = (urlsplit(endpoint).hostname or "").strip("[]")
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    if ip.is_unspecified:
        return True
    try:
        with socket.socket(socket.AF_INET6 if ip.version == 6 else socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind((str(ip), 0))
        return True
    except OSError:
        return False


def stats_endpoint(bind: str) -> str:
    """The default PUB endpoint beside a server's ROUTER endpoint: port + 1, or ``PATH.stats``."""
    if bind.startswith("tcp://"):
        head, _, port = bind.rpartition(":")
        if not port.isdigit():
            raise EndpointError(f"cannot derive a stats endpoint from {bind!r}; give --stats-bind")
        return f"{head}:{int(port) + 1}"
    return bind + ".stats"


def bind(sock: zmq.Socket, endpoint: str, keys_dir: str | Path | None = None, what: str = "a socket") -> str:
    """Bind ``sock`` to ``endpoint``, the one way every socket of ours binds: an endpoint off loopback is
    refused without ``keys_dir``; with ``keys_dir`` the socket is a CURVE server and only clients whose
    key lies in ``keys_dir/authorized`` get through (whatever the endpoint). Returns the bound endpoint."""
    if not keys_dir and not is_loopback(endpoint):
        raise EndpointError(f"binding {what} to {endpoint} (not loopback) needs CURVE keys: make them with "
                            f"'arena keys DIR' and pass --keys DIR")
    if keys_dir:
        start_authenticator(sock.context, keys_dir)
        secure_server(sock, keys_dir)
    sock.bind(endpoint)
    return sock.getsockopt_string(zmq.LAST_ENDPOINT) or endpoint


# -- CURVE ------------------------------------------------------------------------------------------
KEY_FILES = ("server.key", "server.key_secret", "client.key", "client.key_secret")


class KeysExist(EndpointError):
    pass


def make_keys(directory: str | Path, force: bool = False) -> dict[str, Path]:
    """Create ``server`` and ``client`` key pairs in ``directory`` (made or tightened to 0700; secret
    keys 0600); the client's public key is placed in ``directory/authorized`` (the keys a server
    accepts). Existing keys are replaced only with ``force`` (``KeysExist`` otherwise). Returns the paths."""
    d = Path(directory)
    there = [name for name in KEY_FILES if (d / name).exists()]
    if there and not force:
        raise KeysExist(f"{d} already holds keys ({', '.join(there)}); replacing them locks out every machine "
                        f"that has the old ones: pass --force to do it anyway")
    d.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(d, 0o700)
    auth = d / "authorized"
    auth.mkdir(mode=0o700, exist_ok=True)
    os.chmod(auth, 0o700)
    for name in KEY_FILES:     # written afresh: opening an old file for writing would keep its mode
        with contextlib.suppress(FileNotFoundError):
            (d / name).unlink()
    umask = os.umask(0o077)    # no moment where a secret key is readable by others
    try:
        server_pub, server_sec = zmq.auth.create_certificates(d, "server")
        client_pub, client_sec = zmq.auth.create_certificates(d, "client")
    finally:
        os.umask(umask)
    for sec in (server_sec, client_sec):
        os.chmod(sec, 0o600)
    for pub in (server_pub, client_pub):
        os.chmod(pub, 0o644)
    with contextlib.suppress(FileNotFoundError):
        (auth / "client.key").unlink()
    shutil.copy(client_pub, auth / "client.key")
    return {"server_public": Path(server_pub), "server_secret": Path(server_sec),
            "client_public": Path(client_pub), "client_secret": Path(client_sec), "authorized": auth}


def _load(d: Path, name: str):
    path = d / name
    if not path.is_file():
        raise EndpointError(f"no key file {path} (make one with 'arena keys {d}')")
    if name.endswith("_secret"):
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            raise EndpointError(f"secret key {path} is readable by other users (mode {mode:03o}): "
                                f"chmod 600 {path}")
    try:
        return zmq.auth.load_certificate(str(path))
    except (OSError, ValueError) as exc:
        raise EndpointError(f"cannot read key file {path}: {exc}") from None


def check_keys(keys_dir: str | Path, role: str) -> None:
    """Raise ``EndpointError`` (one line) unless ``keys_dir`` holds usable keys for ``role``
    (``server``: its secret key and ``authorized/``; ``client``: its secret key and the server's public key)."""
    d = Path(keys_dir)
    if role == "server":
        _load(d, "server.key_secret")
        if not (d / "authorized").is_dir():
            raise EndpointError(f"no folder {d / 'authorized'} of the clients to accept (make keys with 'arena keys {d}')")
    else:
        _load(d, "client.key_secret")
        _load(d, "server.key")


def secure_server(sock: zmq.Socket, keys_dir: str | Path) -> None:
    """Make ``sock`` a CURVE server with ``keys_dir/server.key_secret``."""
    pub, sec = _load(Path(keys_dir), "server.key_secret")
    if sec is None:
        raise EndpointError(f"{Path(keys_dir) / 'server.key_secret'} holds no secret key")
    sock.curve_secretkey, sock.curve_publickey, sock.curve_server = sec, pub, True


def secure_client(sock: zmq.Socket, keys_dir: str | Path) -> None:
    """Make ``sock`` a CURVE client with ``client.key_secret`` and the server's public key."""
    d = Path(keys_dir)
    pub, sec = _load(d, "client.key_secret")
    if sec is None:
        raise EndpointError(f"{d / 'client.key_secret'} holds no secret key")
    server_pub, _ = _load(d, "server.key")
    sock.curve_secretkey, sock.curve_publickey, sock.curve_serverkey = sec, pub, server_pub


def subscriber(ctx: zmq.Context, endpoints, keys_dir: str | Path | None = None, rcvhwm: int | None = None) -> zmq.Socket:
    """A SUB socket to everything the PUB sockets at ``endpoints`` (one or a list) publish: no linger,
    each frame capped at the protocol's ``MAX_MESSAGE_BYTES``, a CURVE client with ``keys_dir``, and at
    most ``rcvhwm`` messages kept per publisher when given (only the newest matter)."""
    from server.net.protocol import MAX_MESSAGE_BYTES

    sock = ctx.socket(zmq.SUB)
    sock.setsockopt(zmq.SUBSCRIBE, b"")
    if rcvhwm is not None:
        sock.setsockopt(zmq.RCVHWM, rcvhwm)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE_BYTES)
    if keys_dir:
        secure_client(sock, keys_dir)
    for ep in [endpoints] if isinstance(endpoints, str) else endpoints:
        sock.connect(ep)
    return sock


#: the running authenticator of each context (ZeroMQ allows one ZAP handler per context)
_AUTHENTICATORS: dict[int, tuple[zmq.Context, object]] = {}


def start_authenticator(ctx: zmq.Context, keys_dir: str | Path):
    """Only clients whose public key lies in ``keys_dir/authorized`` may connect (any address) to the
    CURVE servers of ``ctx``. One per context: a second call returns the running one."""
    from zmq.auth.thread import ThreadAuthenticator

    known = _AUTHENTICATORS.get(id(ctx))
    if known is not None and known[0] is ctx and known[1].is_alive():
        return known[1]
    auth = ThreadAuthenticator(ctx)
    auth.start()
    auth.configure_curve(domain="*", location=str(Path(keys_dir) / "authorized"))
    _AUTHENTICATORS[id(ctx)] = (ctx, auth)
    return auth


def stop_authenticator(ctx: zmq.Context) -> None:
    """Stop ``ctx``'s authenticator, if it has one (before ``ctx.term()``)."""
    known = _AUTHENTICATORS.pop(id(ctx), None)
    if known is not None and known[0] is ctx:
        known[1].stop()
