"""Endpoints, loopback checks and CURVE keys (pyzmq's ``zmq.auth``), in one place."""
from __future__ import annotations

import ipaddress
import shutil
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


def stats_endpoint(bind: str) -> str:
    """The default PUB endpoint beside a server's ROUTER endpoint: port + 1, or ``PATH.stats``."""
    if bind.startswith("tcp://"):
        head, _, port = bind.rpartition(":")
        if not port.isdigit():
            raise EndpointError(f"cannot derive a stats endpoint from {bind!r}; give --stats-bind")
        return f"{head}:{int(port) + 1}"
    return bind + ".stats"


# -- CURVE ------------------------------------------------------------------------------------------
def make_keys(directory: str | Path) -> dict[str, Path]:
    """Create ``server`` and ``client`` key pairs in ``directory``; the client's public key is placed
    in ``directory/authorized`` (the keys a server accepts). Returns the paths."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    server_pub, server_sec = zmq.auth.create_certificates(d, "server")
    client_pub, client_sec = zmq.auth.create_certificates(d, "client")
    auth = d / "authorized"
    auth.mkdir(exist_ok=True)
    shutil.copy(client_pub, auth / "client.key")
    return {"server_public": Path(server_pub), "server_secret": Path(server_sec),
            "client_public": Path(client_pub), "client_secret": Path(client_sec), "authorized": auth}


def _load(d: Path, name: str):
    path = d / name
    if not path.is_file():
        raise EndpointError(f"no key file {path} (make one with 'arena keys {d}')")
    return zmq.auth.load_certificate(str(path))


def secure_server(sock: zmq.Socket, keys_dir: str | Path) -> None:
    """Make ``sock`` a CURVE server with ``keys_dir/server.key_secret``."""
    pub, sec = _load(Path(keys_dir), "server.key_secret")
    sock.curve_secretkey, sock.curve_publickey, sock.curve_server = sec, pub, True


def secure_client(sock: zmq.Socket, keys_dir: str | Path) -> None:
    """Make ``sock`` a CURVE client with ``client.key_secret`` and the server's public key."""
    d = Path(keys_dir)
    pub, sec = _load(d, "client.key_secret")
    server_pub, _ = _load(d, "server.key")
    sock.curve_secretkey, sock.curve_publickey, sock.curve_serverkey = sec, pub, server_pub


def start_authenticator(ctx: zmq.Context, keys_dir: str | Path):
    """Only clients whose public key lies in ``keys_dir/authorized`` may connect (any address)."""
    from zmq.auth.thread import ThreadAuthenticator

    auth = ThreadAuthenticator(ctx)
    auth.start()
    auth.configure_curve(domain="*", location=str(Path(keys_dir) / "authorized"))
    return auth
