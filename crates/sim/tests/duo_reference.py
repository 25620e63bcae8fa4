"""Reads the Duo emulator with Duo's own Python client (PyPI duo-client 5.7.0).

Run by tests/duo_reference.rs, which passes DUO_HOST, DUO_PORT, DUO_IKEY and DUO_SKEY. Prints
one line per signature scheme; exits non-zero on any error.
"""
import hashlib
import os

import duo_client

for sig_version, digest in [(5, "sha512"), (2, "sha512"), (2, "sha1")]:
    admin = duo_client.Admin(
        ikey=os.environ["DUO_IKEY"],
        skey=os.environ["DUO_SKEY"],
        host=os.environ["DUO_HOST"],
        port=int(os.environ["DUO_PORT"]),
        ca_certs="HTTP",
        sig_version=sig_version,
        digestmod=getattr(hashlib, digest),
    )
    users = list(admin.get_users_iterator())
    groups = list(admin.get_groups_generator())
    probe = users[3]
    by_name = admin.get_users_by_name(probe["username"])
    by_email = admin.get_user_by_email(probe["email"])
    group = admin.get_group(groups[0]["group_id"], api_version=2)
    members = list(admin.get_group_users_iterator(groups[0]["group_id"]))
    user_groups = list(admin.get_user_groups_iterator(probe["user_id"]))
    one = admin.get_user_by_id(probe["user_id"])
    assert by_name[0]["user_id"] == probe["user_id"]
    assert by_email[0]["user_id"] == probe["user_id"]
    assert one["username"] == probe["username"]
    assert group["name"] == groups[0]["name"]
    print(
        f"v{sig_version}-{digest} users={len(users)} groups={len(groups)} "
        f"members={len(members)} user_groups={len(user_groups)}"
    )
