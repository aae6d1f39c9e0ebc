#!/usr/bin/env python3
"""A C++ client script of ../shared/clients run with ACL credentials.

rocketmq-client-cpp signs requests once given ``SetProducerSessionCredentials`` /
``SetPushConsumerSessionCredentials`` (the wrappers' ``set_session_credentials``); the shared
scripts never call it.  This runs the shared driver (cpp_common) unchanged except that every
producer and consumer gets the credentials right after its name server address.

    RMQ_ACL_CLIENT=rocketmqcvs RMQ_ACL_KIND=produce RMQ_ACCESS_KEY=ak RMQ_SECRET_KEY=sk \\
        python3 tests/compat/cpp_acl_client.py --namesrv 127.0.0.1:9876 --topic T --count 5

Client, kind and keys come from the environment because the driver re-executes this file
inside the client's venv with the same command line.
"""

import os
import sys

sys.dont_write_bytecode = True
CLIENTS = os.environ.get("RMQ_SHARED_CLIENTS") or os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "shared", "clients"
)
sys.path.insert(0, os.path.abspath(CLIENTS))
import cpp_common  # noqa: E402

_set_namesrv = cpp_common._set_namesrv


def _with_credentials(obj, addr):
    _set_namesrv(obj, addr)
    obj.set_session_credentials(
        os.environ["RMQ_ACCESS_KEY"], os.environ["RMQ_SECRET_KEY"], "ALIYUN"
    )


cpp_common._set_namesrv = _with_credentials
client = os.environ["RMQ_ACL_CLIENT"]
if os.environ["RMQ_ACL_KIND"] == "produce":
    cpp_common.main_produce(client)
else:
    cpp_common.main_consume(client)
