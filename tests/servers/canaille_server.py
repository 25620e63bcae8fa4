"""Canaille 0.3.6 as a SCIM 2.0 server for scimsync's end-to-end tests.

Builds the Canaille app the way pytest-iam 0.3.0's ``iam_server`` fixture configures it
(in-memory database, a generated RSA key, insecure transport allowed on loopback), registers
one confidential OAuth2 client for the client credentials grant with HTTP Basic client
authentication, serves it with werkzeug's threaded server on 127.0.0.1 and prints one line
``READY <port> <client_id> <client_secret>`` once it listens.

Usage: python canaille_server.py [PORT]   (0 or nothing: a free port)
"""

import datetime
import os
import socket
import sys
import uuid

os.environ["AUTHLIB_INSECURE_TRANSPORT"] = "1"

from canaille import create_app  # noqa: E402
from canaille.app import models  # noqa: E402
from canaille.backends import Backend  # noqa: E402
from joserfc.jwk import JWKRegistry  # noqa: E402
from werkzeug.serving import make_server  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    port = int(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1] != "0" else free_port()
    jwk = JWKRegistry.generate_key("RSA", 2048)
    jwk.ensure_kid()
    config = {
        "TESTING": True,
        "ENV_FILE": None,
        "SECRET_KEY": str(uuid.uuid4()),
        "WTF_CSRF_ENABLED": False,
        "PREFERRED_URL_SCHEME": "http",
        "SERVER_NAME": f"127.0.0.1:{port}",
        "CANAILLE": {
            "DATABASE": "memory",
            "JAVASCRIPT": False,
            "ACL": {"DEFAULT": {"PERMISSIONS": ["use_oidc", "manage_oidc"]}},
            "LOGGING": {
                "version": 1,
                "disable_existing_loggers": False,
                "handlers": {"null": {"class": "logging.NullHandler"}},
                "loggers": {"canaille": {"level": "ERROR", "handlers": ["null"]}},
            },
        },
        "CANAILLE_SCIM": {"ENABLE_SERVER": True, "ENABLE_CLIENT": False},
        "CANAILLE_OIDC": {"ACTIVE_JWKS": [jwk.as_dict(private=True)]},
    }
    app = create_app(config=config, env_file=None, env_prefix="SCIMSYNC_CANAILLE_")
    client_id = "scimsync-" + uuid.uuid4().hex[:8]
    client_secret = uuid.uuid4().hex
    with app.app_context():
        client = models.Client(
            client_id=client_id,
            client_secret=client_secret,
            client_id_issued_at=datetime.datetime.now(datetime.UTC),
            client_name="scimsync",
            grant_types=["client_credentials"],
            response_types=[],
            redirect_uris=[],
            token_endpoint_auth_method="client_secret_basic",
            scope=["openid"],
        )
        Backend.instance.save(client)
        client.audience = [client]
        Backend.instance.save(client)
    server = make_server("127.0.0.1", port, app, threaded=True)
    print(f"READY {port} {client_id} {client_secret}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
